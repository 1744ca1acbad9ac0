export {
  type CaptureFilter,
  CLIENT_SIDE,
  FilterError,
  type Matchable,
  parseFilter,
  SERVER_SIDE,
  type Side,
} from './filter.ts'
export { CAPTURE_BOUNDS, PCAPNG_MEDIA_TYPE, parseCaptureQuery, serveCapture } from './http.ts'
export { CAPTURE_COUNTS, type CaptureLimits, CaptureSession, INTERFACES } from './session.ts'
export { CaptureTap, type FlowKey, flowKey } from './tap.ts'
