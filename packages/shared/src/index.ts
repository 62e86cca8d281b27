// Public surface of @portico/shared: everything other packages may import.
export {};
