export { HTTP_PEEK_MAX, HttpRequestInfo, peekHttpRequest } from './http.ts'
export { PEEK_STATUS_NAMES, Peek, type PeekStatus } from './status.ts'
export { StreamPrefix } from './stream.ts'
export { ClientHelloInfo, MAX_CLIENT_HELLO, peekClientHello } from './tls.ts'
