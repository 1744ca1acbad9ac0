// The one door to @peculiar/x509: its tsyringe container needs the Reflect metadata API at import time,
// the polyfill must be evaluated before the library, and ES modules evaluate their imports in order, so
// everything in flowgate imports X.509 from here.
import 'reflect-metadata'

export * from '@peculiar/x509'
