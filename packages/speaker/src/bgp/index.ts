// Portico's BGP speaker: codec, state machine and session, for the speaker's wiring.
export * from './attributes.ts';
export * from './capabilities.ts';
export * from './clock.ts';
export * from './framer.ts';
export * from './fsm.ts';
export * from './ip.ts';
export * from './message.ts';
export * from './notification.ts';
export * from './prefix.ts';
export * from './session.ts';
export * from './update-builder.ts';
