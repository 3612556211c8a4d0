-- Run once, when the PostgreSQL volume is first created: the demo's documents live in the
-- database named by POSTGRES_DB; the incident bot keeps its incidents and outbox apart.
CREATE DATABASE incident_bot;
