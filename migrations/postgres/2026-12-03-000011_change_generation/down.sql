CREATE OR REPLACE FUNCTION assent_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('assent_changes', TG_TABLE_NAME);
    RETURN NULL;
END
$$;
DROP TABLE assent_changes;
