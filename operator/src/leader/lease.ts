// Leader election on a coordination.k8s.io/v1 Lease, after client-go's leaderelection (OPERATOR.md):
// - acquire or renew by writing holderIdentity/renewTime with the resourceVersion we read; a 409 means
//   someone else wrote first, and we lost that round;
// - another holder's lease counts as expired when its record has not changed for leaseDuration as
//   measured by *our* clock since we first saw that record (clocks of two nodes are never compared);
// - the leader stops acting the moment it cannot renew within renewDeadline (it calls onStoppedLeading
//   before the lease could have expired for anyone else: renewDeadline < leaseDuration);
// - release on shutdown clears holderIdentity so a standby takes over at once instead of waiting.
import { type CoordinationV1Api, type V1Lease, V1MicroTime } from '@kubernetes/client-node'
import { errorMessage, httpStatusOf } from '../errors.ts'
import { sleep, withTimeout } from '../kube/backoff.ts'

export interface LeaderElectorOptions {
  api: CoordinationV1Api
  namespace: string
  name: string
  identity: string
  leaseDurationMs?: number
  renewDeadlineMs?: number
  retryPeriodMs?: number
  onStartedLeading: () => void
  /** called once leadership is lost or given up; the caller must stop writing at once */
  onStoppedLeading: () => void
  onNewLeader?: (identity: string) => void
  log?: (msg: string, fields?: Record<string, unknown>) => void
  now?: () => number
}

export class LeaderElector {
  readonly #o: LeaderElectorOptions
  #leading = false
  #observedRecord = ''
  #observedAt = 0
  #lastRenew = 0
  #leader = ''
  #abort = new AbortController()
  #loop: Promise<void> | undefined

  constructor(o: LeaderElectorOptions) {
    this.#o = o
    const lease = o.leaseDurationMs ?? 15_000
    const renew = o.renewDeadlineMs ?? 10_000
    const retry = o.retryPeriodMs ?? 2_000
    if (!(renew < lease) || !(retry < renew)) {
      throw new Error('leader election needs retryPeriod < renewDeadline < leaseDuration')
    }
  }

  get isLeader(): boolean {
    return this.#leading
  }

  /** the holder we last saw */
  get leader(): string {
    return this.#leader
  }

  #now(): number {
    return (this.#o.now ?? Date.now)()
  }

  start(): void {
    this.#loop ??= this.#run()
  }

  /** Stops campaigning; a leader gives the Lease up (holderIdentity cleared) so a standby takes over now. */
  async stop(): Promise<void> {
    this.#abort.abort()
    await this.#loop
    if (this.#leading) {
      this.#lose('released')
      await this.#release()
    }
  }

  async #run(): Promise<void> {
    const retry = this.#o.retryPeriodMs ?? 2_000
    const deadline = this.#o.renewDeadlineMs ?? 10_000
    const signal = this.#abort.signal
    while (!signal.aborted) {
      const started = this.#now()
      // A renewal stuck in a slow request must not keep us leading: the watchdog fires at the renew
      // deadline whatever the request is doing (client-go bounds each attempt the same way).
      const watchdog = this.#leading
        ? setTimeout(
            () => this.#lose('renew deadline passed'),
            Math.max(0, this.#lastRenew + deadline - started),
          )
        : undefined
      // Each attempt is bounded too, so a hung request cannot stall the campaign of a standby.
      let ok = await withTimeout(this.#tryAcquireOrRenew(), deadline, 'lease update').catch((err) => {
        this.#o.log?.('lease update failed', { error: errorMessage(err) })
        return false
      })
      clearTimeout(watchdog)
      if (signal.aborted) break
      const now = this.#now()
      // A write that took longer than the renew deadline may have landed after others saw the lease
      // expire; do not lead on it.
      if (ok && now - started >= deadline) ok = false
      if (ok) {
        this.#lastRenew = started
        if (!this.#leading) {
          this.#leading = true
          this.#o.log?.('became leader', { identity: this.#o.identity })
          this.#o.onStartedLeading()
        }
      } else if (this.#leading && now - this.#lastRenew >= deadline) {
        this.#lose('renew deadline passed')
      }
      // A leader that has not renewed may lose its lease before the next round: sleep no longer than
      // the time left to its deadline.
      const wait = this.#leading
        ? Math.min(retry, Math.max(1, this.#lastRenew + deadline - this.#now()))
        : retry
      await sleep(wait, signal)
    }
  }

  #lose(why: string): void {
    if (!this.#leading) return
    this.#leading = false
    this.#o.log?.('stopped leading', { identity: this.#o.identity, why })
    this.#o.onStoppedLeading()
  }

  #record(l: V1Lease): string {
    const s = l.spec ?? {}
    return `${s.holderIdentity ?? ''}|${s.renewTime?.toISOString?.() ?? String(s.renewTime ?? '')}|${l.metadata?.resourceVersion}`
  }

  async #tryAcquireOrRenew(): Promise<boolean> {
    const { api, namespace, name, identity } = this.#o
    const leaseSeconds = Math.max(1, Math.ceil((this.#o.leaseDurationMs ?? 15_000) / 1000))
    const now = this.#now()
    let lease: V1Lease
    try {
      lease = await api.readNamespacedLease({ name, namespace })
    } catch (err) {
      if (httpStatusOf(err) !== 404) throw err
      try {
        await api.createNamespacedLease({
          namespace,
          body: {
            metadata: { name, namespace },
            spec: {
              holderIdentity: identity,
              leaseDurationSeconds: leaseSeconds,
              acquireTime: new V1MicroTime(now),
              renewTime: new V1MicroTime(now),
              leaseTransitions: 0,
            },
          },
        })
        this.#setLeader(identity)
        return true
      } catch (e) {
        if (httpStatusOf(e) === 409) return false
        throw e
      }
    }
    const record = this.#record(lease)
    if (record !== this.#observedRecord) {
      this.#observedRecord = record
      this.#observedAt = now
    }
    const holder = lease.spec?.holderIdentity ?? ''
    this.#setLeader(holder)
    const mine = holder === identity
    if (!mine && holder !== '' && this.#observedAt + (this.#o.leaseDurationMs ?? 15_000) > now) return false
    const spec = lease.spec ?? {}
    const next: V1Lease = {
      ...lease,
      spec: {
        ...spec,
        holderIdentity: identity,
        leaseDurationSeconds: leaseSeconds,
        renewTime: new V1MicroTime(now),
        acquireTime: mine && spec.acquireTime ? spec.acquireTime : new V1MicroTime(now),
        leaseTransitions: (spec.leaseTransitions ?? 0) + (mine ? 0 : 1),
      },
    }
    try {
      const r = await api.replaceNamespacedLease({ name, namespace, body: next })
      this.#observedRecord = this.#record(r)
      this.#observedAt = now
      this.#setLeader(identity)
      return true
    } catch (err) {
      if (httpStatusOf(err) === 409) return false
      throw err
    }
  }

  #setLeader(holder: string): void {
    if (holder === this.#leader) return
    this.#leader = holder
    if (holder) this.#o.onNewLeader?.(holder)
  }

  async #release(): Promise<void> {
    const { api, namespace, name, identity } = this.#o
    try {
      const lease = await api.readNamespacedLease({ name, namespace })
      if (lease.spec?.holderIdentity !== identity) return
      await api.replaceNamespacedLease({
        name,
        namespace,
        body: {
          ...lease,
          spec: {
            ...lease.spec,
            holderIdentity: '',
            leaseDurationSeconds: 1,
            renewTime: new V1MicroTime(this.#now()),
          },
        },
      })
    } catch (err) {
      this.#o.log?.('could not release the lease', { error: errorMessage(err) })
    }
  }
}
