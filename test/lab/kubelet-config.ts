// What the lab hands each lab kubelet (as a JSON file): its node and where things are.
export interface KubeletConfig {
  node: string;
  index: number;
  tag: string;
  ipv4: string;
  ipv6: string;
  podCidrV4: string;
  podCidrV6: string;
  /** Pod namespaces are named <podNsPrefix><hash>, so the lab finds them by prefix. */
  podNsPrefix: string;
  kubeconfig: string;
  logDir: string;
  podserver: string;
  heartbeatMs: number;
}
