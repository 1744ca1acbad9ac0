// llhttp as Node's own http module drives it: the `HTTPParser` binding that `_http_common` exports (the same
// strict parser Node's http.Server and ClientRequest use, with the same lenience flags off). It is
// undocumented, so its shape is checked here once, when the module loads: a Node that changed it fails
// every HTTP/1.1 test at once instead of misparsing.

import { createRequire } from 'node:module'

/** The parser's callbacks, installed as indexed properties (kOnHeaders…kOnMessageComplete). */
export interface ParserCallbacks {
  /** the first byte of a message */
  onMessageBegin(): void
  /** header lines flushed early (more than 32 of them, or a long head split across reads) and trailers */
  onHeaders(headers: string[], url: string): void
  /**
   * A head is complete. `headers`/`url` are undefined when they were flushed through onHeaders first.
   * Return 1 to tell the parser the message has no body (a response to HEAD), else 0.
   */
  onHeadersComplete(
    versionMajor: number,
    versionMinor: number,
    headers: string[] | undefined,
    method: number | undefined,
    url: string | undefined,
    statusCode: number | undefined,
    statusMessage: string | undefined,
    upgrade: boolean,
    shouldKeepAlive: boolean,
  ): number
  onBody(chunk: Buffer): void
  onMessageComplete(): void
}

export interface LlhttpParser {
  initialize(type: number, resource: object, maxHeaderSize: number, lenient: number): void
  /** bytes consumed, or the parse error (code HPE_*, bytesParsed) */
  execute(chunk: Buffer): number | (Error & { code?: string; bytesParsed?: number })
  /** end of input: completes a close-delimited body, or the error of an incomplete message */
  finish(): undefined | (Error & { code?: string })
  close(): void
  [k: number]: unknown
}

interface ParserClass {
  new (): LlhttpParser
  REQUEST: number
  RESPONSE: number
  kOnMessageBegin: number
  kOnHeaders: number
  kOnHeadersComplete: number
  kOnBody: number
  kOnMessageComplete: number
  kLenientNone: number
}

const { HTTPParser, methods } = createRequire(import.meta.url)('_http_common') as {
  HTTPParser: ParserClass
  methods: string[]
}
if (
  typeof HTTPParser !== 'function' ||
  typeof HTTPParser.RESPONSE !== 'number' ||
  typeof HTTPParser.kOnHeadersComplete !== 'number' ||
  typeof HTTPParser.kOnMessageBegin !== 'number' ||
  typeof HTTPParser.prototype.execute !== 'function' ||
  typeof HTTPParser.prototype.finish !== 'function' ||
  !Array.isArray(methods)
)
  throw new Error('this Node.js has no usable _http_common.HTTPParser (llhttp); the HTTP/1.1 layer needs it')

/** The response parser type, for initialize() (a parser is re-initialized to start afresh). */
export const RESPONSE_TYPE = HTTPParser.RESPONSE

/** Method names by the index a request parser gives (llhttp's table). */
export const METHODS: readonly string[] = methods

/** A response parser whose callbacks are `cb`'s methods (called with `cb` as `this`). */
export function responseParser(cb: ParserCallbacks, maxHeaderSize: number): LlhttpParser {
  return parser(HTTPParser.RESPONSE, cb, maxHeaderSize)
}

/** A request parser, likewise. */
export function requestParser(cb: ParserCallbacks, maxHeaderSize: number): LlhttpParser {
  return parser(HTTPParser.REQUEST, cb, maxHeaderSize)
}

function parser(type: number, cb: ParserCallbacks, maxHeaderSize: number): LlhttpParser {
  const p = new HTTPParser()
  p.initialize(type, {}, maxHeaderSize, HTTPParser.kLenientNone)
  p[HTTPParser.kOnMessageBegin] = cb.onMessageBegin.bind(cb)
  p[HTTPParser.kOnHeaders] = cb.onHeaders.bind(cb)
  p[HTTPParser.kOnHeadersComplete] = cb.onHeadersComplete.bind(cb)
  p[HTTPParser.kOnBody] = cb.onBody.bind(cb)
  p[HTTPParser.kOnMessageComplete] = cb.onMessageComplete.bind(cb)
  return p
}
