#!/usr/bin/env node
// Runs the compiled CLI when there is one (images, installs), else the TypeScript sources directly
// (a checkout: Node 24 strips the types).
import { existsSync } from 'node:fs'

const built = new URL('../dist/cli/src/main.js', import.meta.url)
const { main } = await import(
  existsSync(built) ? built.href : new URL('../cli/src/main.ts', import.meta.url).href
)
process.exitCode = await main(process.argv.slice(2))
