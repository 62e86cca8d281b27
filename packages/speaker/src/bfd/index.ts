// BFD (RFC 5880/5881/5883): codec, state machine, sessions, transport.
export * from './packet.ts';
export * from './fsm.ts';
export * from './session.ts';
export * from './transport.ts';
export * from './manager.ts';
export * from './damping.ts';
