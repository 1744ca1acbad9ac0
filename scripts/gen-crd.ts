// Writes crds/flowpolicy.yaml from the schema (npm run gen:crd).
import { writeFileSync } from 'node:fs'
import { renderCrdYaml } from '../policy/src/crd.ts'

const out = new URL('../crds/flowpolicy.yaml', import.meta.url)
writeFileSync(out, renderCrdYaml())
console.log(`wrote ${out.pathname}`)
