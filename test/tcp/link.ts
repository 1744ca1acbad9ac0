// Two user-space TCP stacks joined in memory, for the stream-level tests (stream.test.ts,
// stream-handle.test.ts). Segments cross on setImmediate; each turn with nothing in flight moves the fake
// clock by 1 ms.

import { FakeClock, SeededRandom } from '../../appliance/src/tcp/clock.ts'
import type { TcpConfig } from '../../appliance/src/tcp/connection.ts'
import type { TcpRepr } from '../../appliance/src/tcp/segment.ts'
import { type FourTuple, TcpStack } from '../../appliance/src/tcp/stack.ts'
import { type TcpSocket, tcpConnect, tcpListen } from '../../appliance/src/tcp/stream.ts'

/** The same 4-tuple seen from the other end. */
export const flip = (t: FourTuple): FourTuple => ({
  localAddr: t.remoteAddr,
  localPort: t.remotePort,
  remoteAddr: t.localAddr,
  remotePort: t.localPort,
})

export class Link {
  readonly clock = new FakeClock(0)
  readonly a: TcpStack
  readonly b: TcpStack
  #queue: { to: TcpStack; tuple: FourTuple; seg: TcpRepr }[] = []
  #running = true
  constructor(config: Partial<TcpConfig> = {}) {
    this.a = new TcpStack({
      clock: this.clock,
      random: new SeededRandom(1),
      config,
      output: (t, s) => this.#queue.push({ to: this.b, tuple: flip(t), seg: s }),
    })
    this.b = new TcpStack({
      clock: this.clock,
      random: new SeededRandom(2),
      config,
      output: (t, s) => this.#queue.push({ to: this.a, tuple: flip(t), seg: s }),
    })
    const tick = () => {
      if (!this.#running) return
      if (this.#queue.length) {
        const q = this.#queue
        this.#queue = []
        for (const d of q) d.to.input(d.tuple, d.seg)
      } else this.clock.advance(1)
      setImmediate(tick)
    }
    setImmediate(tick)
  }
  stop(): void {
    this.#running = false
  }
}

export const A: FourTuple = {
  localAddr: '10.0.0.1',
  localPort: 40_000,
  remoteAddr: '10.0.0.2',
  remotePort: 443,
}

export function pair(l: Link): Promise<[TcpSocket, TcpSocket]> {
  return new Promise((resolve) => {
    tcpListen(l.b, { localAddr: '10.0.0.2', localPort: 443 }, (server) => resolve([client, server]))
    const client = tcpConnect(l.a, A)
  })
}

/** A second connection on the same link (another client port). */
export function pair2(l: Link): Promise<[TcpSocket, TcpSocket]> {
  const tuple = { ...A, localPort: A.localPort + 1 }
  return new Promise((resolve) => {
    tcpListen(
      l.b,
      { localAddr: '10.0.0.2', localPort: 443, remoteAddr: tuple.localAddr, remotePort: tuple.localPort },
      (server) => resolve([client, server]),
    )
    const client = tcpConnect(l.a, tuple)
  })
}
