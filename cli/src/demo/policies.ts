// The demo's policy set: four of examples/ (test/cli/demo.test.ts checks they stay the same), with one
// change: the AWS allow-list comes after the YouTube policy (priority 300 instead of 100), because its
// defaultAction rejects every other HTTPS flow and the tour also shows an intercepted one.

export const ALLOWED_VIDEO = 'dQw4w9WgXcQ'
export const EVERY_NTH_ICMP = 5

export const DEMO_POLICIES = `# flowgate demo: examples/youtube-one-video.yaml, examples/aws-api-allowlist.yaml (priority 300),
# examples/udp-censor.yaml and examples/icmp-every-fifth.yaml
apiVersion: flowgate.io/v1alpha1
kind: FlowPolicy
metadata:
  name: youtube-one-video
spec:
  priority: 200
  match:
    protocols: [TCP]
    ports: ["443"]
  rules:
    - name: youtube-one-video
      when:
        sni: ["www.youtube.com", "youtube.com"]
      action: Inspect
      http:
        onRequest: |
          var ALLOWED = '${ALLOWED_VIDEO}';
          function onRequest(event) {
            var request = event.request;
            if (request.uri !== '/watch') return request;
            var v = request.querystring.v;
            if (v && v.value === ALLOWED) return request;
            return {
              statusCode: 302,
              statusDescription: 'Found',
              headers: { location: { value: 'https://www.youtube.com/watch?v=' + ALLOWED } }
            };
          }
        onResponse: |
          function onResponse(event) {
            var response = event.response;
            response.headers['x-flowgate'] = { value: 'inspected' };
            return response;
          }
---
apiVersion: flowgate.io/v1alpha1
kind: FlowPolicy
metadata:
  name: aws-api-allowlist
spec:
  priority: 300
  match:
    sources: ["10.0.0.0/8"]
    protocols: [TCP]
    ports: ["443"]
  rules:
    - name: aws-apis
      when:
        sni: ["*.amazonaws.com", "amazonaws.com", "*.aws.amazon.com"]
      action: Allow
    - name: os-mirrors
      when:
        sni: ["deb.debian.org", "security.debian.org", "*.amazonlinux.com"]
      action: Allow
  defaultAction: Reject
---
apiVersion: flowgate.io/v1alpha1
kind: FlowPolicy
metadata:
  name: udp-censor
spec:
  priority: 400
  match:
    protocols: [UDP]
  rules:
    - name: udp-censor
      when:
        ports: ["3000"]
      action: Allow
      packet:
        dropIfContains: ["drop me"]
        replace:
          - from: weakly typed
            to: strongly typed
---
apiVersion: flowgate.io/v1alpha1
kind: FlowPolicy
metadata:
  name: icmp-every-fifth
spec:
  priority: 500
  rules:
    - name: icmp-sample
      when:
        protocols: [ICMP, ICMPv6]
      action: Allow
      packet:
        dropEveryNth: ${EVERY_NTH_ICMP}
`

/** One line per policy, in the order they decide. */
export const POLICY_SUMMARY = [
  '200 youtube-one-video  TCP 443, SNI www.youtube.com → Inspect: TLS intercepted, onRequest/onResponse scripts',
  '300 aws-api-allowlist  TCP 443 from 10.0.0.0/8: SNI *.amazonaws.com and OS mirrors → Allow, else Reject',
  '400 udp-censor         UDP 3000 → Allow; drop datagrams with "drop me", rewrite "weakly typed"',
  '500 icmp-every-fifth   ICMP, ICMPv6 → Allow; drop every 5th packet of each flow',
]
