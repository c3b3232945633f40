-- Deterministic sample data for the four tables of SPEC §2, generated inside PostgreSQL.
--
--   psql -v usage_rows=1000000 -f schema/generate.sql
--
-- Variables (all optional):
--   usage_rows   usage_logs rows                      (default 10000)
--   report_rows  report_usage_logs rows               (default usage_rows / 10)
--   api_keys     api_keys rows                        (default 2000)
--   params       application_parameters rows          (default 60)
--   anchor       newest possible timestamp            (default: the current hour, UTC)
--   days         how far back timestamps spread       (default 100)
--   part, parts  load only part PART (0-based) of PARTS: scripts/sample-data runs the parts
--                in parallel sessions; the rows are the same however they are split
--
-- Every value is a pure function of the row number, the anchor and the sizes, so the same
-- call gives the same rows, and a second call adds nothing (ids are derived, conflicts are
-- skipped). Run schema/schema.sql first.

\set ON_ERROR_STOP on
\if :{?usage_rows} \else \set usage_rows 10000 \endif
\if :{?report_rows} \else \set report_rows -1 \endif
\if :{?api_keys} \else \set api_keys 2000 \endif
\if :{?params} \else \set params 60 \endif
\if :{?anchor} \else \set anchor '' \endif
\if :{?days} \else \set days 100 \endif
\if :{?part} \else \set part 0 \endif
\if :{?parts} \else \set parts 1 \endif

set client_min_messages = warning;
set timezone = 'UTC';

-- A 63-bit hash of (row, salt): the generator's only source of variety.
create or replace function pg_temp.rnd(i bigint, salt int) returns bigint
    language sql immutable parallel safe
    as $$ select (hashint8(i * 1000003 + salt)::bigint & 2147483647) * 2147483648
              + (hashint8(i * 7919 + salt * 31 + 17)::bigint & 2147483647) $$;
-- A derived uuid for (kind, row).
create or replace function pg_temp.uid(kind text, i bigint) returns uuid
    language sql immutable parallel safe
    as $$ select md5(kind || ':' || i)::uuid $$;

create temporary table gen_settings as
select coalesce(nullif(:'anchor', '')::timestamptz, date_trunc('hour', now())) as anchor,
       (:days)::bigint * 86400 * 1000000 as span_us,
       greatest(:api_keys, 1)::bigint as api_keys,
       :usage_rows::bigint as usage_rows,
       case when :report_rows < 0 then :usage_rows / 10 else :report_rows end::bigint as report_rows,
       :params::bigint as params,
       :part::bigint as part, greatest(:parts, 1)::bigint as parts;

-- Timestamps: spread over the span, microsecond precision. Runs of five rows (every
-- thousandth row starts one) and every 97th row share the timestamp of an earlier row,
-- so page boundaries fall inside groups of equal timestamps.
create or replace function pg_temp.ts(anchor timestamptz, span_us bigint, i bigint, salt int) returns timestamptz
    language sql immutable parallel safe
    as $$ select anchor - make_interval(secs => (pg_temp.rnd(
                    case when i % 1000 < 5 then i - i % 1000
                         when i % 97 = 0 then i - 1 else i end, salt) % span_us) / 1000000.0) $$;

\if :part
\else
insert into api_keys
select pg_temp.uid('key', k),
       pg_temp.uid('user', k / 3),
       case when k % 50 = 7 then null
            else (array['Acme Trading', 'Café Übersee GmbH', '東京トレーダーズ', 'مؤسسة الفجر',
                        'Москва Капитал', 'São Paulo Quant', 'Zürich Desk 🚀', 'Nordic Pricing',
                        'दिल्ली डेटा', 'Ops sandbox'])[1 + k % 10] || ' #' || k end,
       (array['free', 'starter', 'pro', 'enterprise', 'stress'])[1 + pg_temp.rnd(k, 1) % 5],
       case when k % 41 = 3 then null else (1 + pg_temp.rnd(k, 2) % 100) * 1000 end,
       (pg_temp.rnd(k, 3) % 100000)::int,
       (1 + pg_temp.rnd(k, 4) % 50)::int,
       (10 + pg_temp.rnd(k, 5) % 90)::int,
       case when k % 37 = 5 then null else (pg_temp.rnd(k, 6) % 100000) / 1000.0 end,
       'tbk_' || case when k % 9 = 0 then 'test_' else 'live_' end || md5('secret:' || k),
       case when k % 3 = 0 then 0.25 when k % 3 = 1 then 1.5 else null end,
       k % 23 = 0,
       case when k % 29 = 1 then null else k % 4 = 0 end,
       case when k % 11 = 2 then null else s.anchor - make_interval(secs => (pg_temp.rnd(k, 7) % 864000000000) / 1000000.0) end,
       s.anchor - make_interval(days => 100 + (k % 400)::int, secs => (pg_temp.rnd(k, 8) % 86400000000) / 1000000.0),
       case when k % 13 = 4 then null else s.anchor - make_interval(secs => (pg_temp.rnd(k, 9) % 864000000000) / 1000000.0) end
from gen_settings s, generate_series(1, s.api_keys) as k
on conflict do nothing;

insert into application_parameters
select name, value
from gen_settings s,
     lateral (values
        ('adaptive_max_concurrent', '512'), ('cache_pool_size', '300'),
        ('coinbase_prewarm_assets', 'BTC,ETH,SOL,ADA,XRP'), ('gemini_prewarm_assets', 'BTC,ETH'),
        ('kraken_prewarm_assets', 'BTC,ETH,SOL,DOT,LINK'), ('log_level', 'info'),
        ('cache_ttl_seconds', '5'), ('maintenance_banner', 'Wartung am Sonntag — 02:00 UTC'),
        ('support_email', 'support@example.com'), ('feature_flags', '{"lrs":true,"stress":false}')
     ) as fixed(name, value)
union all
select 'param_' || lpad(p::text, 3, '0'), case when p % 10 = 3 then null else 'value-' || p end
from gen_settings s, generate_series(1, greatest(s.params - 10, 0)) as p
on conflict do nothing;
\endif

insert into usage_logs
select pg_temp.uid('usage', i),
       case when pg_temp.rnd(i, 2) % 40 = 0 then null else pg_temp.uid('key', 1 + pg_temp.rnd(i, 3) % s.api_keys) end,
       case when pg_temp.rnd(i, 4) % 50 = 0 then null
            else (array['BTC','ETH','SOL','ADA','XRP','DOT','LINK','AVAX','MATIC','DOGE',
                        'LTC','BCH','ATOM','XLM','ALGO','FIL','ETC','NEAR','APT','ARB',
                        'OP','SUI','TRX','UNI','AAVE','MKR','SNX','COMP','CRV','LDO',
                        'INJ','TIA','SEI','RNDR','IMX','GRT','SAND','MANA','AXS','PEPE'])[1 + pg_temp.rnd(i, 5) % 40] end,
       case when pg_temp.rnd(i, 6) % 60 = 0 then null else (pg_temp.rnd(i, 7) % 10000000000) / 100000.0 end,
       case when pg_temp.rnd(i, 8) % 70 = 0 then null
            else (array['coinbase-ws','gemini-ws','kraken-ws','gateio-ws','cryptocom-ws','okx-ws','kraken-prewarm'])[1 + pg_temp.rnd(i, 9) % 7] end,
       case when pg_temp.rnd(i, 10) % 80 = 0 then null else pg_temp.rnd(i, 11) % 3 > 0 end,
       case when pg_temp.rnd(i, 12) % 90 = 0 then null else (pg_temp.rnd(i, 13) % 400)::int end,
       (1 + pg_temp.rnd(i, 14) % 900)::int,
       case when pg_temp.rnd(i, 15) % 100 = 0 then null
            when i % 17 = 0 then '2001:db8::' || to_hex((i % 65536)::int)
            else '203.0.' || (i % 256) || '.' || (pg_temp.rnd(i, 16) % 256) end,
       case when i % 20011 = 0 then null else t.ts end,
       to_char(t.ts, 'Mon DD, YYYY HH12:MI:SS AM "UTC"'),
       case when pg_temp.rnd(i, 17) % 3 = 0 then null else (pg_temp.rnd(i, 18) % 600000) / 1000.0 end,
       (array['BeastMain','BeastMirror','BeastLRS','BeastWebhook'])[1 + pg_temp.rnd(i, 19) % 4],
       case when pg_temp.rnd(i, 20) % 25 = 0 then null else (array['us-east-2','us-west-2','eu-central-1'])[1 + pg_temp.rnd(i, 21) % 3] end,
       (pg_temp.rnd(i, 22) % 100000)::int,
       case when pg_temp.rnd(i, 23) % 30 = 0 then null else 100000 end
from gen_settings s,
     generate_series(s.usage_rows * s.part / s.parts + 1, s.usage_rows * (s.part + 1) / s.parts) as i,
     lateral (select pg_temp.ts(s.anchor, s.span_us, i, 1) as ts) as t
on conflict do nothing;

insert into report_usage_logs
select pg_temp.uid('report', i),
       case when pg_temp.rnd(i, 2) % 40 = 0 then null else pg_temp.uid('key', 1 + pg_temp.rnd(i, 3) % s.api_keys) end,
       (array['usage','summary','report-usage','report-summary'])[1 + pg_temp.rnd(i, 4) % 4],
       case when pg_temp.rnd(i, 5) % 50 = 0 then null else (array['json','csv','tsv','text'])[1 + pg_temp.rnd(i, 6) % 4] end,
       case when pg_temp.rnd(i, 7) % 5 = 0 then null
            else jsonb_build_object('asset', (array['BTC','ETH','SOL'])[1 + i % 3], 'days', 1 + i % 30,
                                    'note', case when i % 7 = 0 then 'récapitulatif 月次' else 'daily' end) end,
       (pg_temp.rnd(i, 8) % 5000)::int,
       (1 + pg_temp.rnd(i, 9) % 3000)::int,
       case when pg_temp.rnd(i, 10) % 100 = 0 then null else '198.51.100.' || (i % 256) end,
       case when i % 20011 = 0 then null else t.ts end,
       to_char(t.ts, 'Mon DD, YYYY HH12:MI:SS AM "UTC"'),
       (array['BeastMain','BeastMirror','BeastLRS','BeastWebhook'])[1 + pg_temp.rnd(i, 11) % 4],
       case when pg_temp.rnd(i, 12) % 25 = 0 then null else 'us-east-2' end,
       case when pg_temp.rnd(i, 13) % 2 = 0 then 'TCP' else 'UDP' end,
       (array[200, 200, 200, 200, 400, 429, 500])[1 + pg_temp.rnd(i, 14) % 7]
from gen_settings s,
     generate_series(s.report_rows * s.part / s.parts + 1, s.report_rows * (s.part + 1) / s.parts) as i,
     lateral (select pg_temp.ts(s.anchor, s.span_us, i, 2) as ts) as t
on conflict do nothing;

\if :part
\else
analyze usage_logs;
analyze report_usage_logs;
analyze api_keys;
analyze application_parameters;
\endif
