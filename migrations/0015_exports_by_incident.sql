-- An incident's page lists its evidence exports.
CREATE INDEX exports_incident ON exports (incident_id) WHERE incident_id IS NOT NULL;
