-- schema.sql — the demo application: schema `app`, shaped like the company's data (web access log,
-- accounts, invoices, support tickets, contact form, live chat). Used by .ci/demo and the db tests.
-- Plain SQL, no psql meta-commands. Never drops anything: it fails on a database that has `app`.

CREATE SCHEMA app;
COMMENT ON SCHEMA app IS 'retentiond demo application (fake data only).';

-- Web server log: "Usage data & log files", kept at most seven days, IP shortened.
CREATE TABLE app.access_log (
        id bigserial PRIMARY KEY,
        requested_at timestamptz NOT NULL,
        ip inet,
        path text,
        user_agent text,
        status int,
        bytes bigint
);
CREATE INDEX access_log_requested_at_idx ON app.access_log (requested_at);

-- "Account registration": deleted within 10 days of the deletion request, unless a legal
-- retention period (invoices, tax law) applies; then only anonymised.
CREATE TABLE app.accounts (
        id bigserial PRIMARY KEY,
        email text NOT NULL,
        full_name text,
        phone text,
        created_at timestamptz NOT NULL DEFAULT now(),
        deletion_requested_at timestamptz
);
CREATE INDEX accounts_deletion_requested_at_idx ON app.accounts (deletion_requested_at);

-- Tax/commercial law: invoices are kept (10 years assumed). RESTRICT: an account that still has
-- invoices can never disappear by cascade; the policy anonymises it instead (while_held).
CREATE TABLE app.invoices (
        id bigserial PRIMARY KEY,
        account_id bigint REFERENCES app.accounts ON DELETE RESTRICT,
        issued_at timestamptz NOT NULL,
        amount numeric(12, 2)
);
CREATE INDEX invoices_issued_at_idx ON app.invoices (issued_at);
CREATE INDEX invoices_account_id_idx ON app.invoices (account_id);

-- "Contact and support form": stored for up to 6 years. Tickets go with their account.
CREATE TABLE app.support_tickets (
        id bigserial PRIMARY KEY,
        account_id bigint REFERENCES app.accounts ON DELETE CASCADE,
        created_at timestamptz NOT NULL,
        subject text,
        body text,
        email text
);
CREATE INDEX support_tickets_created_at_idx ON app.support_tickets (created_at);
CREATE INDEX support_tickets_account_id_idx ON app.support_tickets (account_id);

-- Contact form messages from visitors (no account).
CREATE TABLE app.contact_messages (
        id bigserial PRIMARY KEY,
        email text,
        name text,
        created_at timestamptz NOT NULL,
        message text
);
CREATE INDEX contact_messages_created_at_idx ON app.contact_messages (created_at);

-- "Live Chat" transcripts; the transcript outlives a deleted account only without its link.
CREATE TABLE app.chat_transcripts (
        id bigserial PRIMARY KEY,
        account_id bigint REFERENCES app.accounts ON DELETE SET NULL,
        email text,
        started_at timestamptz NOT NULL,
        transcript text
);
CREATE INDEX chat_transcripts_started_at_idx ON app.chat_transcripts (started_at);
CREATE INDEX chat_transcripts_account_id_idx ON app.chat_transcripts (account_id);
