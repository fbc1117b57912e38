-- Align the database's check of granted_permissions with the API's parser
-- (admin/src/auth/permissions.rs): scope is `*`, `team` or `own`; names are at most 64 chars.
CREATE OR REPLACE FUNCTION permissions_are_valid(permissions text[]) RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT array_position(permissions, NULL) IS NULL
       AND coalesce(bool_and(p ~ '^(\*|[a-z][a-z0-9_]{0,63}):(\*|[a-z][a-z0-9_]{0,63}):(\*|team|own)$'), true)
    FROM unnest(permissions) AS p
$$;
