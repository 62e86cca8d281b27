// MetalLB configuration written the way MetalLB's documentation shows it (its
// field names, our documentation addresses), for the import tests. One
// export per kind of input; `ALL_CRDS` is a complete layer-2 + BGP setup.

export const POOLS = `
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata:
  name: first-pool
  namespace: metallb-system
spec:
  addresses:
  - 203.0.113.0/28
  - 203.0.113.32-203.0.113.40
  - 2001:db8:5::/124
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata:
  name: expensive
  namespace: metallb-system
  labels:
    tier: premium
spec:
  addresses:
  - 203.0.113.64/29
  autoAssign: false
  avoidBuggyIPs: true
  serviceAllocation:
    priority: 50
    namespaces: [namespace-a, namespace-b]
    namespaceSelectors:
    - matchLabels: { foo: bar }
    serviceSelectors:
    - matchExpressions:
      - { key: serviceType, operator: In, values: [premium] }
`;

export const L2 = `
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata:
  name: example
  namespace: metallb-system
spec:
  ipAddressPools: [first-pool]
  nodeSelectors:
  - matchLabels:
      kubernetes.io/hostname: node-a
  interfaces: [eth3]
`;

export const BGP = `
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata:
  name: sample
  namespace: metallb-system
spec:
  myASN: 64500
  peerASN: 64501
  peerAddress: 198.51.100.201
  holdTime: 90s
  keepaliveTime: 30s
  bfdProfile: full-example
  passwordSecret:
    name: secretname
    namespace: metallb-system
  enableGracefulRestart: true
  disableMP: false
---
apiVersion: metallb.io/v1beta1
kind: BGPPeer
metadata:
  name: old-style
  namespace: metallb-system
spec:
  myASN: 64500
  peerASN: 64502
  peerAddress: 198.51.100.202
  routerID: 198.51.100.1
  nodeSelectors:
  - matchLabels: { rack: frontend }
    matchExpressions:
    - { key: network-speed, operator: NotIn, values: [slow] }
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata:
  name: local
  namespace: metallb-system
spec:
  ipAddressPools: [expensive]
  aggregationLength: 32
  aggregationLengthV6: 128
  localPref: 100
  communities: [65535:65282, vpn-only]
  peers: [sample]
---
apiVersion: metallb.io/v1beta1
kind: Community
metadata:
  name: communities
  namespace: metallb-system
spec:
  communities:
  - name: vpn-only
    value: 1234:1
  - name: NO_ADVERTISE
    value: 65535:65282
---
apiVersion: metallb.io/v1beta1
kind: BFDProfile
metadata:
  name: full-example
  namespace: metallb-system
spec:
  receiveInterval: 380
  transmitInterval: 270
  detectMultiplier: 37
  echoInterval: 62
  echoMode: true
  passiveMode: true
  minimumTtl: 254
`;

export const ALL_CRDS = `${POOLS}\n---\n${L2}\n---\n${BGP}`;

/** MetalLB's ConfigMap format (before the CRDs), layer 2 and BGP pools. */
export const LEGACY = `
apiVersion: v1
kind: ConfigMap
metadata:
  namespace: metallb-system
  name: config
data:
  config: |
    peers:
    - peer-address: 198.51.100.201
      peer-asn: 64501
      my-asn: 64500
      hold-time: 120s
      node-selectors:
      - match-labels:
          rack: frontend
        match-expressions:
        - key: network-speed
          operator: NotIn
          values: [slow]
    bgp-communities:
      no-advertise: 65535:65282
    bfd-profiles:
    - name: fast
      receive-interval: 300
      transmit-interval: 300
    address-pools:
    - name: default
      protocol: layer2
      addresses:
      - 203.0.113.10-203.0.113.20
      - 2001:db8:6::/120
    - name: routed
      protocol: bgp
      auto-assign: false
      avoid-buggy-ips: true
      addresses:
      - 203.0.113.128/27
      bgp-advertisements:
      - aggregation-length: 32
        localpref: 100
        communities: [no-advertise]
      - aggregation-length: 27
    - name: routed-defaults
      protocol: bgp
      addresses:
      - 203.0.113.192/28
`;
