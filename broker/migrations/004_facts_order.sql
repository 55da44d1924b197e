-- ingest_batch() again, with one change: the facts of a batch take their ids
-- in the order of the batch's items (and of each review's facts). The rule
-- engine evaluates facts in id order, a backtest in event-time order: for a
-- batch sent in event-time order (sn-simulate's, a case system's backlog) the
-- two orders are the same, so live and backtest give the same notices.
CREATE OR REPLACE FUNCTION ingest_batch(batch jsonb) RETURNS TABLE (idx int, outcome text)
LANGUAGE plpgsql
-- plan the big statement once per session, not at every call: planning it
-- costs more than running it for a small batch
SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
DECLARE
    idxs     int[];
    outcomes text[];
    sources  text[];
    ids      text[];
    hashes   text[];
    stored   text;
BEGIN
    WITH items AS (
        SELECT (t.ord - 1)::int AS idx, t.value AS item, t.value->>'source' AS source,
               t.value->>'id' AS event_id, t.value->>'hash' AS hash
          FROM jsonb_array_elements(batch) WITH ORDINALITY AS t(value, ord)
    ), firsts AS (
        SELECT DISTINCT ON (source, event_id) idx, item, source, event_id, hash
          FROM items ORDER BY source, event_id, idx
    ), existing AS (
        -- the statement's snapshot: rows stored before this batch. One index
        -- lookup per item (LIMIT keeps the planner from turning the LATERAL
        -- into a hash join over the whole table)
        SELECT f.source, f.event_id, e.content_sha256
          FROM firsts f
         CROSS JOIN LATERAL (SELECT content_sha256 FROM events
                              WHERE source = f.source AND event_id = f.event_id LIMIT 1) AS e
    ), inserted AS (
        INSERT INTO events (source, event_id, content_sha256, envelope, channel)
        SELECT source, event_id, hash, item->'envelope', item->>'channel' FROM firsts ORDER BY idx
        ON CONFLICT (source, event_id) DO NOTHING
        RETURNING seq, source, event_id
    ), accepted AS (
        SELECT f.idx, f.item, i.seq FROM firsts f JOIN inserted i USING (source, event_id)
    ), winners AS (
        SELECT DISTINCT ON (jurisdiction, review_id) idx, item, seq, jurisdiction, review_id,
               count(*) OVER (PARTITION BY jurisdiction, review_id) AS versions
          FROM (SELECT a.*, a.item->>'jurisdiction' AS jurisdiction,
                       a.item->>'review_id' AS review_id FROM accepted a) AS k
         ORDER BY jurisdiction, review_id, idx DESC
    ), upserted AS (
        INSERT INTO reviews AS r (jurisdiction, review_id, version, event_seq, finalized_at)
        SELECT jurisdiction, review_id, versions, seq, (item->>'finalized_at')::timestamptz
          FROM winners
        ON CONFLICT (jurisdiction, review_id) DO UPDATE
            SET version = r.version + EXCLUDED.version, event_seq = EXCLUDED.event_seq,
                finalized_at = EXCLUDED.finalized_at, updated_at = now()
        RETURNING r.jurisdiction, r.review_id, r.version
    ), retracted AS (
        -- sees the facts as they were before this statement: only old versions'
        UPDATE facts SET retracted_at = now()
         WHERE id IN (SELECT old.id FROM upserted u
                       CROSS JOIN LATERAL (SELECT id FROM facts
                                            WHERE jurisdiction = u.jurisdiction
                                              AND review_id = u.review_id
                                              AND retracted_at IS NULL OFFSET 0) AS old
                       WHERE u.version > 1)
        RETURNING id
    ), new_facts AS (
        INSERT INTO facts (event_seq, jurisdiction, review_id, review_version, event_time, kind,
                           theme, subtheme, partner, seips_domain, priority, incident_type, cause,
                           age_band, need)
        SELECT w.seq, u.jurisdiction, u.review_id, u.version, (w.item->>'finalized_at')::timestamptz,
               x.kind, x.theme, x.subtheme, x.partner, x.seips_domain, x.priority,
               x.incident_type, x.cause, x.age_band, x.need
          FROM winners w
          JOIN upserted u USING (jurisdiction, review_id)
         CROSS JOIN LATERAL jsonb_array_elements(w.item->'facts') WITH ORDINALITY AS e(fact, ord)
         CROSS JOIN LATERAL jsonb_to_record(e.fact) AS x(kind text, theme text, subtheme text,
               partner text, seips_domain text, priority text, incident_type text, cause text,
               age_band text, need text)
         ORDER BY w.idx, e.ord
        RETURNING id
    ), notified AS (
        SELECT pg_notify('sn_facts', (SELECT count(*) FROM inserted)::text)
         WHERE EXISTS (SELECT 1 FROM inserted)
    ), outcomes AS (
        SELECT i.idx, i.source, i.event_id, i.hash,
               CASE WHEN ins.seq IS NOT NULL AND i.idx = f.idx THEN 'accepted'
                    -- stored by a concurrent transaction after our snapshot: look again
                    WHEN ins.seq IS NULL AND x.content_sha256 IS NULL THEN 'recheck'
                    WHEN i.hash = coalesce(x.content_sha256, f.hash) THEN 'duplicate'
                    ELSE 'conflict' END AS outcome
          FROM items i
          JOIN firsts f USING (source, event_id)
          LEFT JOIN inserted ins USING (source, event_id)
          LEFT JOIN existing x USING (source, event_id)
    )
    SELECT array_agg(o.idx ORDER BY o.idx), array_agg(o.outcome ORDER BY o.idx),
           array_agg(o.source ORDER BY o.idx), array_agg(o.event_id ORDER BY o.idx),
           array_agg(o.hash ORDER BY o.idx)
      INTO idxs, outcomes, sources, ids, hashes
      FROM outcomes o CROSS JOIN (SELECT count(*) FROM notified) AS n;

    FOR k IN 1 .. coalesce(array_length(idxs, 1), 0) LOOP
        idx := idxs[k];
        outcome := outcomes[k];
        IF outcome = 'recheck' THEN
            -- a new statement, a new snapshot
            SELECT e.content_sha256 INTO stored FROM events e
             WHERE e.source = sources[k] AND e.event_id = ids[k];
            outcome := CASE WHEN stored = hashes[k] THEN 'duplicate' ELSE 'conflict' END;
        END IF;
        RETURN NEXT;
    END LOOP;
END
$$;
