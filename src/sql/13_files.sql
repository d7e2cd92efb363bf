-- ===================================================================
-- Files (SPEC section 3, v2): ugc.file_path and ambassadors.photo_path
-- are relative paths under ambassadors/<that ambassador's id>/, segments
-- of [A-Za-z0-9_.-] not starting with a dot (a whitelist), checked when
-- the path or the row's ambassador changes (to another ambassador: the
-- ambassador's deletion sets it NULL), so no ambassador can point at another person's file (whose
-- erasure would then delete it) or outside the storage.  Replacing or
-- deleting a path queues the old file as delete_file; the application
-- deletes it from storage.  Paths already stored when popsell was
-- upgraded are checked only when they change.
-- ===================================================================

CREATE FUNCTION popsell._check_file_path(p_path text, p_ambassador_id bigint, p_column text)
    RETURNS void
    LANGUAGE plpgsql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_path IS NULL THEN
        RETURN;
    END IF;
    -- A whitelist: ambassadors/<id>/ then segments of ASCII letters, digits,
    -- '_', '-' and '.', none starting with a dot (so no "." or ".." and no
    -- percent-encoded, fullwidth or invisible lookalike of them).
    IF pg_catalog.octet_length(p_path) OPERATOR(pg_catalog.>) 256
       OR p_ambassador_id IS NULL
       OR p_path OPERATOR(pg_catalog.!~)
          ('^ambassadors/' OPERATOR(pg_catalog.||) p_ambassador_id OPERATOR(pg_catalog.||) '(/[A-Za-z0-9_-][A-Za-z0-9._-]*)+$') THEN
        RAISE EXCEPTION '% is not a file of ambassador %', p_column, coalesce(p_ambassador_id::text, 'NULL')
            USING ERRCODE = 'PS108',
                  DETAIL = 'A file path is relative, at most 256 bytes, ambassadors/<the ambassador''s id>/ then segments of ASCII letters, digits, "_", "-" and ".", none starting with a dot.',
                  HINT = 'Store the file under the ambassador''s own directory, e.g. ambassadors/<id>/photo.jpg.';
    END IF;
END
$$;
COMMENT ON FUNCTION popsell._check_file_path(text, bigint, text) IS
    'Internal: PS108 unless the path is ambassadors/<ambassador id>/ then segments of [A-Za-z0-9_.-] not starting with a dot, at most 256 bytes.';

-- Queue a file for deletion (the application removes it from storage).
CREATE FUNCTION popsell._queue_file_deletion(p_path text, p_ambassador_id bigint, p_what text, p_ugc_id bigint)
    RETURNS void
    LANGUAGE sql
    SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    INSERT INTO popsell.outbox (kind, ambassador_id, payload)
    SELECT 'delete_file'::popsell.outbox_kind, p_ambassador_id,
           pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
               'file_path', p_path, 'what', p_what, 'ugc_id', p_ugc_id))
     WHERE nullif(p_path, '') IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM popsell.outbox o
                        WHERE o.kind OPERATOR(pg_catalog.=) 'delete_file'::popsell.outbox_kind
                          AND o.sent_at IS NULL
                          AND (o.payload OPERATOR(pg_catalog.->>) 'file_path') OPERATOR(pg_catalog.=) p_path);
END;
COMMENT ON FUNCTION popsell._queue_file_deletion(text, bigint, text, bigint) IS
    'Internal: queue a delete_file outbox row for a path, once (an unsent row for the same path is enough).';

CREATE FUNCTION popsell.files_row() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_TABLE_SCHEMA OPERATOR(pg_catalog.<>) 'popsell'
       OR TG_TABLE_NAME NOT IN ('ugc', 'ambassadors') OR TG_LEVEL OPERATOR(pg_catalog.<>) 'ROW'
       OR TG_OP NOT IN ('INSERT', 'UPDATE', 'DELETE') THEN
        RAISE EXCEPTION 'popsell.files_row() handles rows of popsell.ugc and popsell.ambassadors only'
            USING ERRCODE = 'PS900', HINT = 'Drop this trigger; popsell attaches its triggers itself.';
    END IF;
    IF popsell._restoring() THEN
        RETURN CASE WHEN TG_OP OPERATOR(pg_catalog.=) 'DELETE' THEN OLD ELSE NEW END;
    END IF;
    IF TG_WHEN OPERATOR(pg_catalog.=) 'BEFORE' THEN
        IF TG_TABLE_NAME OPERATOR(pg_catalog.=) 'ugc' THEN
            IF TG_OP OPERATOR(pg_catalog.=) 'INSERT'
               OR NEW.file_path IS DISTINCT FROM OLD.file_path
               OR (NEW.ambassador_id IS DISTINCT FROM OLD.ambassador_id
                   AND NEW.ambassador_id IS NOT NULL) THEN
                PERFORM popsell._check_file_path(NEW.file_path, NEW.ambassador_id, 'file_path');
            END IF;
        ELSIF TG_OP OPERATOR(pg_catalog.=) 'INSERT'
              OR NEW.photo_path IS DISTINCT FROM OLD.photo_path
              OR NEW.id IS DISTINCT FROM OLD.id THEN
            PERFORM popsell._check_file_path(nullif(NEW.photo_path, ''), NEW.id, 'photo_path');
        END IF;
        RETURN NEW;
    END IF;
    -- AFTER: the file a row no longer names goes.
    IF TG_TABLE_NAME OPERATOR(pg_catalog.=) 'ugc' THEN
        IF TG_OP OPERATOR(pg_catalog.=) 'DELETE' THEN
            PERFORM popsell._queue_file_deletion(OLD.file_path, OLD.ambassador_id, 'ugc', OLD.id);
        ELSIF NEW.file_path IS DISTINCT FROM OLD.file_path THEN
            PERFORM popsell._queue_file_deletion(OLD.file_path, OLD.ambassador_id, 'ugc', OLD.id);
        END IF;
    ELSIF TG_OP OPERATOR(pg_catalog.=) 'UPDATE' AND NEW.photo_path IS DISTINCT FROM OLD.photo_path THEN
        PERFORM popsell._queue_file_deletion(OLD.photo_path, OLD.id, 'ambassador_photo', NULL);
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION popsell.files_row() IS
    'Trigger: file paths of UGC and ambassador photos stay under ambassadors/<id>/ (PS108); a replaced or deleted path is queued as delete_file.';

CREATE TRIGGER popsell_30_files BEFORE INSERT OR UPDATE OF file_path, ambassador_id ON popsell.ugc
    FOR EACH ROW EXECUTE FUNCTION popsell.files_row();
CREATE TRIGGER popsell_70_files AFTER UPDATE OF file_path OR DELETE ON popsell.ugc
    FOR EACH ROW EXECUTE FUNCTION popsell.files_row();
CREATE TRIGGER popsell_30_files BEFORE INSERT OR UPDATE OF photo_path, id ON popsell.ambassadors
    FOR EACH ROW EXECUTE FUNCTION popsell.files_row();
CREATE TRIGGER popsell_70_files AFTER UPDATE OF photo_path ON popsell.ambassadors
    FOR EACH ROW EXECUTE FUNCTION popsell.files_row();
