// Public surface of @portico/controller (for tests and benchmarks).
export { Allocator, familyPlan, poolAdmits, type ServiceRequest, type AllocationResult, type FamilyPolicy } from './allocator.ts';
export { ServiceReconciler, type Outcome, type Result, type ServiceSink } from './reconciler.ts';
export { toRequest, statusIPs, type ServiceObject } from './service.ts';
export { Controller, type ControllerOptions } from './controller.ts';
