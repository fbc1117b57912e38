-- People: logins (users) and staff profiles with granular permissions.
-- Merchants, traders and teams, which are also people, live in their own migrations and point here.

CREATE TABLE users (
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    login                text NOT NULL
                         CHECK (login = btrim(login) AND char_length(login) BETWEEN 3 AND 64),
    -- A PHC string (argon2id); the application never stores or logs the password itself.
    password_hash        text NOT NULL CHECK (password_hash <> ''),
    role                 text NOT NULL
                         CHECK (role IN ('admin', 'support', 'team_lead', 'trader', 'merchant')),
    display_name         text,
    email                text CHECK (email IS NULL OR email ~ '^[^@\s]+@[^@\s]+$'),
    is_blocked           boolean NOT NULL DEFAULT false,
    blocked_at           timestamptz,
    blocked_reason       text,
    -- Issued JWTs carry this number; bumping it (password change, block, role change) revokes
    -- every token issued before, without a token blacklist.
    token_version        integer NOT NULL DEFAULT 0 CHECK (token_version >= 0),
    password_changed_at  timestamptz,
    last_login_at        timestamptz,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_blocked_at_check CHECK (is_blocked = (blocked_at IS NOT NULL)),
    -- Target of role-pinned foreign keys: a trader row must point at a user whose role is
    -- 'trader', a merchant at a 'merchant', and so on. Those FKs cascade role updates into a
    -- CHECK-pinned column, so changing the role of a user who is, say, a trader is refused.
    CONSTRAINT users_id_role_key UNIQUE (id, role)
);
-- Logins are case-insensitive: 'Alice' and 'alice' are the same person.
CREATE UNIQUE INDEX users_login_key ON users (lower(login));
CREATE INDEX users_role_idx ON users (role);
CREATE TRIGGER users_set_updated_at BEFORE UPDATE ON users
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- Permission strings are resource:action:scope, each part a word or '*'
-- ('orders:read:*', 'traders:update:team', '*:*:*'). No element may be NULL.
CREATE FUNCTION permissions_are_valid(permissions text[]) RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT array_position(permissions, NULL) IS NULL
       AND coalesce(bool_and(p ~ '^(\*|[a-z][a-z0-9_]*):(\*|[a-z][a-z0-9_]*):(\*|[A-Za-z0-9_.-]+)$'),
                    true)
    FROM unnest(permissions) AS p
$$;

-- Staff: admin, support and team lead. Traders and merchants have no staff profile.
CREATE TABLE staff_profiles (
    user_id              uuid PRIMARY KEY,
    user_role            text NOT NULL CHECK (user_role IN ('admin', 'support', 'team_lead')),
    granted_permissions  text[] NOT NULL DEFAULT '{}'
                         CHECK (permissions_are_valid(granted_permissions)),
    role_description     text,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    updated_by           uuid REFERENCES users (id),
    CONSTRAINT staff_profiles_user_fkey FOREIGN KEY (user_id, user_role)
        REFERENCES users (id, role) ON UPDATE CASCADE
);
CREATE TRIGGER staff_profiles_set_updated_at BEFORE UPDATE ON staff_profiles
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- Manual exchange rates record who entered them (the table predates users).
ALTER TABLE exchange_rates
    ADD CONSTRAINT exchange_rates_created_by_fkey FOREIGN KEY (created_by) REFERENCES users (id);
