-- Rows whose columns cover the Postgres types a tag is commonly made of (and NULLs); the
-- expected records in pg_types.jsonl were produced by the row-by-row psycopg implementation.
CREATE TABLE rt_types AS
SELECT i,
       CASE WHEN i % 7 = 0 THEN NULL ELSE 'acct_' || i END AS t_text,
       (ARRAY['Zürich', 'say "hi"', 'a\b', E'tab\tnl\n', '日本', '📈', '', ' x '])[1 + i % 8]::varchar(20) AS t_varchar,
       (i % 5)::int2 AS t_int2, (i * 1000003)::int4 AS t_int4, (i::int8 * 10000000019) AS t_int8,
       (ARRAY[1.50, 0.0000001, 100000, -2.5, 0, 123456789.123456789, NULL, 1e-20])[1 + i % 8]::numeric AS t_numeric,
       (i / 3.0)::float4 AS t_float4, (ARRAY[0.1, 1e16, 1e-5, 5e-324, -0.0, 2.5, 1e22, 12345.678])[1 + i % 8]::float8 AS t_float8,
       (i % 3 = 0) AS t_bool, (date '2026-01-01' + i) AS t_date,
       (timestamp '2026-03-29 01:30:00' + i * interval '17 minutes 0.25 seconds') AS t_ts,
       (timestamptz '2026-03-29 00:30:00+00' + i * interval '1 hour') AS t_tstz,
       md5(i::text)::uuid AS t_uuid, ('x' || i)::char(4) AS t_char,
       (i * 10 + 0.125)::numeric(12, 3) AS value_num
FROM generate_series(1, 120) AS i;
