-- The four source tables of SPEC §2, as production has them.
-- Unqualified names: they land in the first schema of search_path, so tests and demos can
-- keep separate copies (libpq option `options=-csearch_path=NAME`).

set client_min_messages = warning;

create table if not exists usage_logs (
    id                 uuid primary key,
    api_key_id         uuid,
    asset              text,
    price              float8,
    source             text,
    cached             bool,
    latency_ms         int,
    duration_ms        int,
    ip_address         text,
    "timestamp"        timestamptz,
    readable_timestamp text,
    cache_age_seconds  float8,
    cluster_node       text,
    region             text,
    monthly_usage      int,
    monthly_limit      int
);
create index if not exists usage_logs_timestamp_id on usage_logs ("timestamp", id);

create table if not exists report_usage_logs (
    id                 uuid primary key,
    api_key_id         uuid,
    report_type        text,
    format             text,
    filters            jsonb,
    row_count          int,
    duration_ms        int,
    ip_address         text,
    "timestamp"        timestamptz,
    readable_timestamp text,
    cluster_node       text,
    region             text,
    protocol           text,
    status_code        int
);
create index if not exists report_usage_logs_timestamp_id on report_usage_logs ("timestamp", id);

create table if not exists api_keys (
    id                   uuid primary key,
    user_id              uuid,
    name                 text,
    tier                 text,
    query_limit          int,
    current_usage        int,
    rate_limit_qps       int,
    burst_limit          int,
    burst_tokens         float8,
    api_key              text unique,
    minimum_wait_seconds float8,
    revoked              bool,
    lrs_enabled          bool,
    last_used            timestamptz,
    created_at           timestamptz,
    last_success         timestamptz
);

create table if not exists application_parameters (
    name  text primary key,
    value text
);
