// The one door to @peculiar/x509: the Reflect shim must be evaluated before the library, and ES modules
// evaluate their imports in order, so everything in flowgate imports X.509 from here.
import './reflect-shim.ts'

export * from '@peculiar/x509'
