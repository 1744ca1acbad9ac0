// What the data plane learns from each intercepted HTTP exchange (the HTTP layer's onExchange): the AWS
// account a SigV4-signed request is for — counted, and noted on the flow for its records — and, when the
// deciding policy asks for HAR and something takes HAR entries, a recorder for the exchange.
//
// Per request this is one pass over the field names and a substring test on the target (aws-requests.ts)
// plus one boolean: nothing is recorded or copied unless a HAR sink is active and the policy opted in.

import type { CheckedHar } from '../../../policy/src/validate.ts'
import type { ExchangeObserver, ExchangeStart, RequestDecision } from '../http/index.ts'
import { type AwsApiRequests, awsRequestOf } from './aws-requests.ts'
import type { HarHub } from './har-hub.ts'
import { HarRecorder } from './har-recorder.ts'

/** The data plane's decisions carry the deciding policy's HAR settings through the HTTP layer. */
export interface ObservedDecision extends RequestDecision {
  har?: CheckedHar
}

export interface FlowFacts {
  scheme: 'http' | 'https'
  /** SNI or server address (the URL's host when a request has none) */
  authority: string
  serverIp: string
  endpoint: string
  /** address:port */
  client: string
}

export interface ExchangeSinks {
  aws: AwsApiRequests
  har: HarHub
  /** the flow saw a request signed for this account */
  noteAccount(account: string): void
}

export function observeExchanges(
  sinks: ExchangeSinks,
  flow: FlowFacts,
): (x: ExchangeStart) => ExchangeObserver | undefined {
  return (x) => {
    const aws = awsRequestOf(x.fields, x.target)
    if (aws) {
      sinks.aws.record(aws)
      if (aws.account) sinks.noteAccount(aws.account)
    }
    const har = (x.decision as ObservedDecision).har
    if (!har || !sinks.har.active) return undefined
    const hub = sinks.har
    return new HarRecorder(x, {
      scheme: flow.scheme,
      authority: flow.authority,
      serverIp: flow.serverIp,
      endpoint: flow.endpoint,
      client: flow.client,
      policy: x.decision.policy ?? null,
      rule: x.decision.rule ?? null,
      awsAccountId: aws?.account ?? null,
      options: har,
      budget: hub.budget,
      now: () => performance.now(),
      wallNow: Date.now,
      emit: (entry) => hub.emit(entry),
    })
  }
}
