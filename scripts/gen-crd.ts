// Writes everything generated from the schema: crds/flowpolicy.yaml and docs/flowpolicy-reference.md
// (npm run gen:crd). Tests fail when the committed files differ from what this writes.
import { writeFileSync } from 'node:fs'
import { renderCrdYaml } from '../policy/src/crd.ts'
import { renderReference } from '../policy/src/reference.ts'

for (const [path, text] of [
  ['../crds/flowpolicy.yaml', renderCrdYaml()],
  ['../docs/flowpolicy-reference.md', renderReference()],
] as const) {
  const out = new URL(path, import.meta.url)
  writeFileSync(out, text)
  console.log(`wrote ${out.pathname}`)
}
