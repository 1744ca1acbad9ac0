// npm run build:native (also run by `prepare`, so `npm ci` builds it): compiles native/ (the packet I/O
// addon and TUN helper) with node-gyp. The addon is Node-API only, so any Node >= 16 headers will do
// (nodedir from .npmrc, or the headers node-gyp fetches for the running Node).
//
// node-gyp is not a dependency of ours: npm ships one and tells lifecycle scripts where it is
// (npm_config_node_gyp). Run by hand, we look for the one inside the npm on PATH.
// A failed build fails `npm ci` on Linux on purpose (native is the default backend); FLOWGATE_SKIP_NATIVE=1
// skips it on a machine without a compiler.
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, realpathSync, statSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const native = join(root, 'native')
const out = join(native, 'build', 'Release', 'flowgate_io.node')

if (process.env.FLOWGATE_SKIP_NATIVE === '1') {
  console.log('build:native: FLOWGATE_SKIP_NATIVE=1, not building the addon (the dgram backend still works)')
  process.exit(0)
}
if (process.platform !== 'linux') {
  console.log('build:native: not Linux, skipping the packet I/O addon (the dgram backend still works)')
  process.exit(0)
}

function findNodeGyp(): string {
  const fromNpm = process.env.npm_config_node_gyp
  if (fromNpm && existsSync(fromNpm)) return fromNpm
  const candidates: string[] = []
  if (process.env.npm_execpath) {
    candidates.push(
      join(dirname(process.env.npm_execpath), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
    )
  }
  try {
    const npm = realpathSync(execFileSync('sh', ['-c', 'command -v npm'], { encoding: 'utf8' }).trim())
    candidates.push(join(dirname(npm), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'))
    candidates.push(
      join(
        dirname(npm),
        '..',
        'lib',
        'node_modules',
        'npm',
        'node_modules',
        'node-gyp',
        'bin',
        'node-gyp.js',
      ),
    )
  } catch {}
  const found = candidates.find((c) => existsSync(c))
  if (!found) throw new Error(`build:native: node-gyp not found (looked in ${candidates.join(', ')})`)
  return found
}

// `--if-stale`: skip when the addon is newer than every source (used by test helpers on a dev machine).
if (process.argv.includes('--if-stale') && existsSync(out)) {
  const built = statSync(out).mtimeMs
  const sources = [join(native, 'binding.gyp'), join(native, 'src', 'flowgate_io.c')]
  if (sources.every((s) => statSync(s).mtimeMs < built)) process.exit(0)
}

const args = [findNodeGyp(), 'rebuild', `--directory=${native}`]
if (process.env.npm_config_nodedir) args.push(`--nodedir=${process.env.npm_config_nodedir}`)
const r = spawnSync(process.execPath, args, { stdio: 'inherit' })
if (r.status !== 0) {
  console.error('build:native: node-gyp failed; the native packet I/O backend will be unavailable')
  process.exit(r.status ?? 1)
}
