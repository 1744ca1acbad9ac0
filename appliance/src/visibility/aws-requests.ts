// AWS API requests seen on intercepted flows, counted by account and service for
// flowgate_aws_api_requests_total{account,service}. The account is decoded from the SigV4 access key id
// (aws-account.ts), the service is the credential scope's.
//
// Both come from the client, so either could take any value: the labels are bounded. The first
// MAX_ACCOUNTS accounts seen (since the process started) get their own label value, later ones count as
// "other"; likewise the first MAX_SERVICES service names that look like one. A signed request whose key id
// carries no account (a pre-2019 key, or not an AKIA/ASIA key) counts as account "unknown". At most
// (MAX_ACCOUNTS + 2) × (MAX_SERVICES + 1) series, whatever clients send. First seen rather than most
// requests: a top-N by volume would move label values between series as traffic shifts, and counters
// whose label set changes under them are not counters.

import type { Fields } from '../http/headers.ts'
import { accountIdFromAccessKeyId, credentialFromAuthorization, credentialFromQuery } from './aws-account.ts'

export const MAX_ACCOUNTS = 64
export const MAX_SERVICES = 32
export const OTHER = 'other'
export const UNKNOWN_ACCOUNT = 'unknown'

/** A request's SigV4 facts; undefined when it is not SigV4-signed. */
export interface AwsRequest {
  /** 12 digits, or undefined when the key id carries none */
  account: string | undefined
  service: string
}

const SERVICE = /^[a-z0-9][a-z0-9.-]{0,62}$/

/**
 * The SigV4 credential of a request as the client sent it, from its Authorization field or a presigned
 * target's X-Amz-Credential. Cheap on requests that are neither: one pass over the field names and a
 * substring test on the target, before any parsing.
 */
export function awsRequestOf(fields: Fields, target: string): AwsRequest | undefined {
  let auth: string | undefined
  for (const [n, v] of fields) {
    if (n === 'authorization') {
      auth = v
      break
    }
  }
  const c =
    (auth?.includes('AWS4-') ? credentialFromAuthorization(auth) : undefined) ??
    (target.includes('-Credential=') || target.includes('-credential=')
      ? credentialFromQuery(target)
      : undefined)
  if (!c) return undefined
  return { account: accountIdFromAccessKeyId(c.accessKeyId), service: c.service }
}

export interface AwsRequestCount {
  account: string
  service: string
  requests: number
}

export class AwsApiRequests {
  private readonly accounts = new Set<string>()
  private readonly services = new Set<string>()
  private readonly counts = new Map<string, AwsRequestCount>()

  record(r: AwsRequest): void {
    const account = this.accountLabel(r.account)
    const service = this.serviceLabel(r.service)
    const key = `${account}/${service}`
    const c = this.counts.get(key)
    if (c) c.requests++
    else this.counts.set(key, { account, service, requests: 1 })
  }

  private accountLabel(a: string | undefined): string {
    if (a === undefined) return UNKNOWN_ACCOUNT
    if (this.accounts.has(a)) return a
    if (this.accounts.size >= MAX_ACCOUNTS) return OTHER
    this.accounts.add(a)
    return a
  }

  private serviceLabel(s: string): string {
    if (this.services.has(s)) return s
    if (this.services.size >= MAX_SERVICES || !SERVICE.test(s)) return OTHER
    this.services.add(s)
    return s
  }

  snapshot(): AwsRequestCount[] {
    return [...this.counts.values()].map((c) => ({ ...c }))
  }
}
