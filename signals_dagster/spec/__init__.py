"""Collector specification: YAML → templating → validated pydantic models (`spec.loader`,
`spec.models`); imported by module so the contract model can build on `spec.base`."""
