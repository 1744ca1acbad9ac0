// No container engine here: the Dockerfile and skaffold.yaml are checked for what can be checked without
// one — every path a stage copies exists and is not hidden by .dockerignore, stages reference stages that
// exist, the runtime is Node 24 slim and non-root, the addon lands where the compiled code loads it from,
// and skaffold's values render the chart.
import { existsSync, readFileSync } from 'node:fs'
import test from 'ava'
import { parse } from 'yaml'
import { loadChart, renderChart } from '../support/helm-render.ts'

const root = new URL('../../', import.meta.url)
const read = (p: string) => readFileSync(new URL(p, root), 'utf8')

interface Instr {
  op: string
  args: string
  line: number
}
interface Stage {
  from: string
  name: string | undefined
  instrs: Instr[]
}

function parseDockerfile(text: string): { args: Map<string, string>; stages: Stage[] } {
  const logical: Instr[] = []
  const lines = text.split('\n')
  for (let i = 0; i < lines.length; i++) {
    const start = i
    let l = lines[i]!
    if (/^\s*(#|$)/.test(l)) continue
    while (l.endsWith('\\') && i + 1 < lines.length) l = `${l.slice(0, -1)} ${lines[++i]!.trim()}`
    const m = /^\s*([A-Za-z]+)\s+(.*)$/.exec(l)
    if (m) logical.push({ op: m[1]!.toUpperCase(), args: m[2]!.trim(), line: start + 1 })
  }
  const args = new Map<string, string>()
  const stages: Stage[] = []
  for (const ins of logical) {
    if (ins.op === 'ARG' && !stages.length) {
      const [k, v] = ins.args.split('=')
      args.set(k!, v ?? '')
    } else if (ins.op === 'FROM') {
      const m = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args)!
      stages.push({
        from: m[1]!.replace(/\$\{(\w+)\}/g, (_, k) => args.get(k) ?? ''),
        name: m[2],
        instrs: [],
      })
    } else stages.at(-1)?.instrs.push(ins)
  }
  return { args, stages }
}

const docker = parseDockerfile(read('Dockerfile'))
const ignore = read('.dockerignore')
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l && !l.startsWith('#'))

const copies = (s: Stage) =>
  s.instrs
    .filter((i) => i.op === 'COPY')
    .map((i) => {
      const parts = i.args.split(/\s+/)
      const from = parts.find((p) => p.startsWith('--from='))?.slice(7)
      const rest = parts.filter((p) => !p.startsWith('--'))
      return { from, srcs: rest.slice(0, -1), dest: rest.at(-1)!, line: i.line }
    })

test('every stage copies paths that exist in the repository and are not in .dockerignore', (t) => {
  const names: string[] = []
  for (const s of docker.stages) {
    for (const c of copies(s)) {
      if (c.from) {
        t.true(names.includes(c.from), `line ${c.line}: --from=${c.from} is an earlier stage`)
        continue
      }
      for (const src of c.srcs) {
        t.true(existsSync(new URL(src, root)), `line ${c.line}: ${src} exists`)
        const hidden = ignore.find((p) => !p.includes('*') && (src === p || src.startsWith(`${p}/`)))
        t.is(hidden, undefined, `line ${c.line}: ${src} is not excluded by .dockerignore`)
      }
    }
    if (s.name) names.push(s.name)
  }
})

test('the build stage builds the TypeScript and the native addon from every compiled folder', (t) => {
  const build = docker.stages.find((s) => s.name === 'build')!
  const runs = build.instrs.filter((i) => i.op === 'RUN').map((i) => i.args)
  t.true(
    runs.some((r) => r.includes('npm ci')),
    'npm ci (its prepare script builds native/)',
  )
  t.true(runs.some((r) => r.includes('npm run build')))
  const pkg = JSON.parse(read('package.json'))
  t.truthy(pkg.scripts.build)
  t.regex(pkg.scripts.prepare ?? '', /build:native/, 'npm ci builds the addon through prepare')
  const tsb = JSON.parse(read('tsconfig.build.json'))
  const copied = copies(build).flatMap((c) => c.srcs)
  for (const inc of tsb.include as string[]) {
    const top = inc.split('/')[0]!
    t.true(copied.includes(top), `${top}/ (compiled by tsconfig.build.json) is copied`)
  }
  t.is(tsb.compilerOptions.outDir, 'dist')
  t.true(copied.includes('native/binding.gyp') && copied.includes('native/src'))
  t.true(copied.includes('scripts/build-native.ts'))
  t.true(
    build.instrs.some((i) => i.op === 'RUN' && /apt-get install .*g\+\+/.test(i.args)),
    'a C toolchain',
  )
})

test('the compiled appliance finds the addon where the image puts it', (t) => {
  const src = read('appliance/src/io/addon.ts')
  const rel = /new URL\('([^']+flowgate_io\.node)', import\.meta\.url\)/.exec(src)![1]!
  const loadedFrom = new URL(rel, 'file:///app/dist/appliance/src/io/addon.js').pathname
  const build = docker.stages.find((s) => s.name === 'build')!
  const cp = build.instrs.find(
    (i) => i.op === 'RUN' && i.args.includes('cp native/build/Release/flowgate_io.node'),
  )!
  const dest = /cp native\/build\/Release\/flowgate_io\.node (\S+)/.exec(cp.args)![1]!
  const runtime = docker.stages.at(-1)!
  const dist = copies(runtime).find((c) => c.from === 'build' && c.srcs[0] === '/src/dist')!
  const workdir = runtime.instrs.find((i) => i.op === 'WORKDIR')!.args
  t.is(
    `${workdir}/${dist.dest}/${dest.replace(/^dist\//, '').replace(/\/$/, '')}/flowgate_io.node`,
    loadedFrom,
  )
})

test('the runtime stage is Node 24 slim, production dependencies only, non-root, flowgate as entrypoint', (t) => {
  const runtime = docker.stages.at(-1)!
  t.regex(runtime.from, /^node:24[\w.-]*-slim$/)
  const user = runtime.instrs.filter((i) => i.op === 'USER').at(-1)!.args
  t.regex(user, /^\d+(:\d+)?$/, 'numeric, so runAsNonRoot can be checked')
  t.not(Number(user.split(':')[0]), 0)
  const entry = JSON.parse(runtime.instrs.find((i) => i.op === 'ENTRYPOINT')!.args)
  t.deepEqual(entry, ['node', '/app/bin/flowgate.js'])
  t.true(read('bin/flowgate.js').includes('../dist/cli/src/main.js'), 'bin/flowgate.js runs the compiled CLI')
  const deps = docker.stages.find((s) => s.name === 'deps')!
  t.true(deps.instrs.some((i) => i.op === 'RUN' && i.args.includes('--omit=dev')))
  t.deepEqual(
    copies(runtime).map((c) => c.from ?? c.srcs.join(' ')),
    ['package.json', 'bin', 'deps', 'build'],
    'nothing else reaches the runtime image: no sources, no toolchain, no dev dependencies',
  )
  t.false(
    runtime.instrs.some((i) => i.op === 'RUN'),
    'the runtime stage runs nothing (no package manager left behind)',
  )
})

test('the chart runs the subcommands the image entrypoint expects', (t) => {
  const r = renderChart(loadChart(new URL('charts/flowgate', root).pathname))
  const containers = r.objects
    .filter((o) => o.kind === 'Deployment' || o.kind === 'DaemonSet')
    .map((o) => o.spec.template.spec.containers[0])
  t.deepEqual(containers.map((c) => c.args[0]).sort(), ['appliance', 'operator'])
  t.true(
    containers.every((c) => c.command === undefined),
    'the entrypoint is kept',
  )
  t.true(
    containers.every((c) => c.image === containers[0].image),
    'one image for both',
  )
})

test('skaffold.yaml builds the image and deploys the chart with it; every profile renders', (t) => {
  const sk = parse(read('skaffold.yaml'))
  t.regex(sk.apiVersion, /^skaffold\/v4beta\d+$/)
  t.is(sk.kind, 'Config')
  const images = sk.build.artifacts.map((a: { image: string }) => a.image)
  for (const a of sk.build.artifacts) t.is(a.docker.dockerfile, 'Dockerfile')
  const release = sk.deploy.helm.releases[0]
  t.true(existsSync(new URL(`${release.chartPath}/Chart.yaml`, root)))
  for (const img of images) {
    t.is(release.setValueTemplates['image.repository'], `{{.IMAGE_REPO_${img}}}`)
    t.is(release.setValueTemplates['image.tag'], `{{.IMAGE_TAG_${img}}}`)
  }
  const chart = loadChart(new URL(release.chartPath, root).pathname)
  const nest = (flat: Record<string, unknown>) => {
    const out: Record<string, unknown> = {}
    for (const [k, v] of Object.entries(flat)) {
      const path = k.split('.')
      let o = out
      for (const p of path.slice(0, -1)) {
        o[p] ??= {}
        o = o[p] as Record<string, unknown>
      }
      o[path.at(-1)!] = v
    }
    return out
  }
  const base = { ...release.setValues, 'image.repository': 'flowgate', 'image.tag': 'abc1234' }
  t.notThrows(() => renderChart(chart, { values: nest(base), namespace: release.namespace }))
  for (const profile of sk.profiles ?? []) {
    const set = { ...base }
    for (const p of profile.patches ?? []) {
      const m = /^\/deploy\/helm\/releases\/0\/setValues\/(.+)$/.exec(p.path)
      if (m && p.op === 'add') set[m[1]!] = p.value
    }
    t.notThrows(
      () => renderChart(chart, { values: nest(set), namespace: release.namespace }),
      `profile ${profile.name}`,
    )
  }
})
