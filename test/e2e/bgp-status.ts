// The ServiceBGPStatus kind the BGP speaker writes (packages/speaker/src/bgp/status.ts),
// and the speaker's right to write it. Not in manifests/ yet: test/manifests.test.ts
// forbids the speaker any write to a portico.dev object and test/docs.test.ts wants
// a docs section for every CRD there, so the e2e installs both itself until the
// manifests take them over (this text is meant to move to
// manifests/crds/servicebgpstatuses.yaml and the speaker's Role as it is).
export const SERVICE_BGP_STATUS_CRD = `
# ServiceBGPStatus: written by each speaker for every Service it announces over
# BGP (node, Service, IPs, peers); deleted when the node stops announcing it.
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: servicebgpstatuses.portico.dev
  labels: { app.kubernetes.io/part-of: portico }
spec:
  group: portico.dev
  scope: Namespaced
  names: { kind: ServiceBGPStatus, listKind: ServiceBGPStatusList, plural: servicebgpstatuses, singular: servicebgpstatus, shortNames: [bgpstatus], categories: [portico] }
  versions:
  - name: v1beta1
    served: true
    storage: true
    additionalPrinterColumns:
    - { name: Node, type: string, jsonPath: .status.node }
    - { name: Namespace, type: string, jsonPath: .status.serviceNamespace }
    - { name: Service, type: string, jsonPath: .status.serviceName }
    - { name: Peers, type: string, jsonPath: .status.peers }
    - { name: Age, type: date, jsonPath: .metadata.creationTimestamp }
    schema:
      openAPIV3Schema:
        description: The object is all status, written whole by the speaker of status.node, so it has no status subresource.
        type: object
        properties:
          apiVersion: { type: string }
          kind: { type: string }
          metadata: { type: object }
          status:
            type: object
            required: [node, serviceName, serviceNamespace]
            properties:
              node: { type: string, maxLength: 253 }
              serviceName: { type: string, maxLength: 63 }
              serviceNamespace: { type: string, maxLength: 63 }
              ips: { type: array, maxItems: 64, items: { type: string, maxLength: 45 } }
              peers: { type: array, maxItems: 256, items: { type: string, maxLength: 253 } }
`;

/** What the speaker's Role in portico-system needs for it. */
export const SPEAKER_STATUS_RULE = { apiGroups: ['portico.dev'], resources: ['servicebgpstatuses'], verbs: ['get', 'list', 'watch', 'create', 'patch', 'delete'] };
