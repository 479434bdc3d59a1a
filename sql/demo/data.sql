-- data.sql — fills the demo application (sql/demo/schema.sql) with fake but realistic data spanning
-- years, relative to now(), deterministic: every count below is exact by construction. Runs after
-- `retentiond migrate` (it places legal holds in retention.holds). Never real people; never on real data.
--
-- Ages are kept well away from every retention boundary (7 days, 10 days, 6 years, 10 years), so the
-- counts hold for at least two hours after loading. Exact counts (the db tests rely on them):
--
-- app.access_log        20000 rows, ids in time order (id 1 is the oldest)
--     older than 7 days          4400 (ids 1..4400, 7.1..9 days old); the rest 1 minute..6.9 days
--     ip: 18000 IPv4, 1920 IPv6, 80 NULL; rows older than 1 day already have shortened IPs (as
--     if retentiond had been running); the last day's 2250 rows have host bits set
--     older than 7 days by ip:   3960 IPv4, 423 IPv6, 17 NULL
-- app.accounts            300 rows, ids 1..300
--     1..260, 300  no deletion request
--     261..265     requested 2 days ago: due, not overdue, no invoices, no holds   -> deleted
--     266..280     requested 15..40 days ago (overdue), invoices < 10 years old    -> tax hold
--     281, 282     requested 16, 18 days ago (overdue), no invoices, one support
--                  ticket 200/250 days old (younger than 6 years)                  -> commercial hold
--     283..292     requested 20..38 days ago (overdue), nothing else               -> deleted
--     293, 294     overdue, active legal hold (registry), no invoices, a ticket
--                  400/300 days old and one older than 6 years                    -> legal + commercial
--     295          overdue, active legal hold (expires in 90 days), an invoice
--                  500 days old, a ticket older than 6 years                       -> legal + tax
--     296, 297     overdue, no invoices, no tickets, a chat 100/150 days old
--                  (ON DELETE SET NULL: the chat stays, unlinked)                  -> deleted
--     298          overdue, legal hold released 10 days ago                        -> deleted
--     299          overdue, legal hold expired 5 days ago                          -> deleted
--     300          no deletion request; active legal hold (expires in a year)
--   so: due 39; requested more than 10 days ago 34, of which 20 are held (kept lawfully) and 14
--       not (overdue: 283..292, 296..299); deletable 19 (261..265, 283..292, 296..299);
--       held 20: tax-records 16 (266..280, 295), commercial-correspondence (support ticket
--       younger than 6 years) 4 (281, 282, 293, 294), legal 3 (293, 294, 295).
--   No due account has a young invoice without being tax-held, so no delete is refused by the
--   RESTRICT key of app.invoices, whatever the rule order.
-- app.invoices           2431 rows of 81 accounts: 2400 of accounts 4, 8, .., 260 over 12 years
--     (45 of them older than 10 years, none of a held account), 30 of 266..280 (all younger than
--     3 years), 1 of 295 (500 days old); older than 10 years in all: 45
-- app.support_tickets    1209 rows over 8 years; older than 6 years: 190, of which 5 belong to
--     legally held accounts (293, 294, 295: one each; 300: two) and 185 are unheld (30 without
--     account, 155 of accounts 1..260); 281 and 282 have one 200/250-day-old ticket each
-- app.contact_messages   1500 rows over 8 years; older than 6 years: 367
-- app.chat_transcripts    904 rows over 8 years (300 without account); older than 6 years: 161,
--     of which 1 of account 300 (legal hold), 74 without account, 86 of accounts 1..260;
--     296 and 297 have one young chat each
-- retention.holds           6 rows (accounts 293, 294, 295, 298 released, 299 expired, 300)
--     active now: 293, 294, 295, 300
-- retention.hold_events     7 rows (6 placed, 1 released)

DO $$
BEGIN
        IF EXISTS (SELECT 1 FROM app.accounts) OR EXISTS (SELECT 1 FROM app.access_log) THEN
                RAISE EXCEPTION 'the demo tables already hold data'
                        USING HINT = 'Load sql/demo/data.sql once, into a fresh database with sql/demo/schema.sql.';
        END IF;
END;
$$;

DO $$ BEGIN PERFORM setseed(0.4242); END; $$;

-- Names that are common first and last names, combined mechanically: nobody in particular.
CREATE TEMPORARY TABLE demo_names AS
SELECT ARRAY['Alex', 'Maria', 'Jonas', 'Priya', 'Chen', 'Fatima', 'Lukas', 'Sofia', 'Omar', 'Hannah',
             'Mateo', 'Aiko', 'Noah', 'Leila', 'Ivan', 'Grace', 'Tomasz', 'Amara', 'Elias', 'Nina'] AS first,
       ARRAY['Becker', 'Okafor', 'Lindqvist', 'Tanaka', 'Moreau', 'Silva', 'Novak', 'Haddad', 'Kowalski',
             'Jensen', 'Rossi', 'Nakamura', 'Fischer', 'Mensah', 'Varga', 'Duarte', 'Keller', 'Ibrahim',
             'Laine', 'Petrov'] AS last,
       ARRAY['example.com', 'example.org', 'example.net', 'mail.example', 'corp.example'] AS domain;

-- Access log ------------------------------------------------------------------------------------
-- k 1..4400: 9 days down to 7.1 days old; k 4401..20000: 6.9 days down to 1 minute old.

INSERT INTO app.access_log (id, requested_at, ip, path, user_agent, status, bytes)
SELECT k,
       now() - make_interval(secs => CASE WHEN k <= 4400
                                          THEN 9 * 86400 - (k - 1) * (1.9 * 86400 / 4399)
                                          ELSE 6.9 * 86400 - (k - 4401) * ((6.9 * 86400 - 60) / 15599) END),
       CASE WHEN k % 250 = 0 THEN NULL
            WHEN k % 10 = 0 THEN format('2001:db8:%s:%s::%s', to_hex(k % 65536), to_hex(k * 7 % 65536),
                                        to_hex(1 + k % 4000))::inet
            ELSE format('%s.%s.%s.%s', 11 + k * 13 % 100, k * 7 % 256, k * 11 % 256, 1 + k * 37 % 254)::inet
       END,
       (ARRAY['/', '/pricing', '/login', '/signup', '/app/campaigns', '/app/contacts', '/app/reports',
              '/api/v1/send', '/blog/email-deliverability-tips', '/docs/getting-started',
              '/static/app.js', '/static/style.css', '/favicon.ico', '/unsubscribe'])[1 + floor(random() * 14)::int],
       (ARRAY['Mozilla/5.0 (X11; Linux x86_64; rv:109.0) Gecko/20100101 Firefox/115.0',
              'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36',
              'Mozilla/5.0 (Macintosh; Intel Mac OS X 13_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Safari/605.1.15',
              'Mozilla/5.0 (iPhone; CPU iPhone OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148',
              'curl/7.88.1',
              'Googlebot/2.1 (+http://www.google.com/bot.html)'])[1 + floor(random() * 6)::int],
       (ARRAY[200, 200, 200, 200, 200, 200, 200, 304, 301, 404, 403, 500])[1 + floor(random() * 12)::int],
       (200 + floor(random() * 250000))::bigint
FROM generate_series(1, 20000) AS k;

-- retentiond has been running here for a while (hourly, as the service does): the IP addresses of
-- log lines older than one day are already shortened, so the first demo run finds only the last
-- day's addresses to shorten, as it would in production. (A first run on a backlog where more than
-- half of a table is due trips the circuit breaker and needs --force once: see the README.)
UPDATE app.access_log
   SET ip = network(set_masklen(ip, CASE family(ip) WHEN 4 THEN 24 ELSE 48 END))::inet
 WHERE requested_at < now() - interval '1 day' AND ip IS NOT NULL;

-- Accounts --------------------------------------------------------------------------------------

INSERT INTO app.accounts (id, email, full_name, phone, created_at, deletion_requested_at)
SELECT id,
       lower(n.first[1 + id % 20] || '.' || n.last[1 + (id * 7 / 3) % 20] || id) || '@' || n.domain[1 + id % 5],
       CASE WHEN id % 17 = 0 THEN NULL ELSE n.first[1 + id % 20] || ' ' || n.last[1 + (id * 7 / 3) % 20] END,
       CASE WHEN id % 3 = 0 THEN NULL ELSE '+44 7700 900' || lpad(id::text, 3, '0') END,  -- Ofcom drama range
       now() - make_interval(days => CASE
                       WHEN id <= 260 THEN 4400 - 12 * id
                       WHEN id <= 265 THEN 900 + 10 * (id - 261)
                       WHEN id <= 280 THEN 1500 + 10 * (id - 266)
                       WHEN id <= 292 THEN 700 + 10 * (id - 281)
                       WHEN id <= 295 THEN 3000 + 10 * (id - 293)
                       WHEN id <= 297 THEN 1100 + 10 * (id - 296)
                       WHEN id <= 299 THEN 1000 + 10 * (id - 298)
                       ELSE 3100 END,
                   hours => id % 24),
       CASE
               WHEN id <= 260 OR id = 300 THEN NULL
               WHEN id <= 265 THEN now() - interval '2 days' - make_interval(hours => id - 261)
               WHEN id <= 280 THEN now() - make_interval(days => 15 + (id - 266) * 25 / 14)
               WHEN id <= 292 THEN now() - make_interval(days => 16 + (id - 281) * 2)
               WHEN id <= 295 THEN now() - make_interval(days => 20 + (id - 293) * 5)
               WHEN id <= 297 THEN now() - make_interval(days => 18 + (id - 296) * 15)
               ELSE now() - make_interval(days => 21 + (id - 298) * 14)
       END
FROM generate_series(1, 300) AS id, demo_names AS n;

-- Invoices --------------------------------------------------------------------------------------
-- Ages in days d are moved out of [3645, 3660] (10 years is 3652 or 3653 days).

INSERT INTO app.invoices (id, account_id, issued_at, amount)
SELECT j, acct,
       now() - make_interval(days => CASE WHEN d BETWEEN 3645 AND 3660 THEN d - 20 ELSE d END,
                             hours => j * 13 % 24),
       round((19 + j * 37 % 980 + (j % 100) / 100.0)::numeric, 2)
FROM (SELECT j, 4 * (1 + j % 65) AS acct,
             1 + (j * 7919) % (4400 - 12 * 4 * (1 + j % 65) - 2) AS d
      FROM generate_series(1, 2400) AS j) AS g;

INSERT INTO app.invoices (id, account_id, issued_at, amount)
SELECT 2400 + row_number() OVER (ORDER BY acct, age), acct,
       now() - make_interval(days => age), 49.00
FROM (SELECT id AS acct, 30 + (id - 266) * 20 AS age FROM generate_series(266, 280) AS id
      UNION ALL
      SELECT id, 400 + (id - 266) * 30 FROM generate_series(266, 280) AS id
      UNION ALL VALUES (295, 500)) AS s(acct, age);

-- Support tickets -------------------------------------------------------------------------------
-- Ages in days d are moved out of [2185, 2199] (6 years is 2191 or 2192 days).

INSERT INTO app.support_tickets (id, account_id, created_at, subject, body, email)
SELECT k, acct,
       now() - make_interval(days => CASE WHEN d BETWEEN 2185 AND 2199 THEN d - 20 ELSE d END,
                             hours => k * 5 % 24),
       (ARRAY['Cannot import my contacts', 'Question about my invoice', 'Bounce rate suddenly high',
              'How do I set up DKIM?', 'Please cancel my subscription', 'API returns 429',
              'Password reset e-mail not arriving', 'Feature request: A/B testing'])[1 + k % 8],
       'Hello, ' || coalesce(a.full_name, 'team') || ' here. ' ||
       (ARRAY['The CSV upload stops at 80 %.', 'My last invoice shows the wrong VAT number.',
              'Since Monday many of our mails bounce.', 'Which DNS records do I need?',
              'We no longer need the service.', 'We hit the rate limit with 10 requests a minute.',
              'I requested a reset three times.', 'It would help us a lot.'])[1 + k % 8] ||
       ' Phone: ' || coalesce(a.phone, 'n/a'),
       coalesce(a.email, 'visitor' || k || '@example.com')
FROM (SELECT k, acct,
             1 + (k * 4813) % (CASE WHEN acct IS NULL THEN 2920 ELSE least(2920, 4400 - 12 * acct - 2) END) AS d
      FROM (SELECT k, CASE WHEN k % 10 = 0 THEN NULL ELSE 1 + (k * 7) % 260 END AS acct
            FROM generate_series(1, 1200) AS k) AS g0) AS g
LEFT JOIN app.accounts AS a ON a.id = g.acct;

INSERT INTO app.support_tickets (id, account_id, created_at, subject, body, email)
SELECT 1200 + row_number() OVER (ORDER BY s.acct, s.age), s.acct, now() - make_interval(days => s.age),
       'Data export request', 'Please send me a copy of my data. ' || coalesce(a.full_name, ''), a.email
FROM (VALUES (281, 200), (282, 250), (293, 2600), (293, 400), (294, 2700), (294, 300), (295, 2650),
             (300, 2800), (300, 2900)) AS s(acct, age)
JOIN app.accounts AS a ON a.id = s.acct;

-- Contact form ----------------------------------------------------------------------------------

INSERT INTO app.contact_messages (id, email, name, created_at, message)
SELECT k,
       lower(n.first[1 + k * 3 % 20] || '.' || n.last[1 + k * 11 % 20] || (k % 97)) || '@' || n.domain[1 + k % 5],
       n.first[1 + k * 3 % 20] || ' ' || n.last[1 + k * 11 % 20],
       now() - make_interval(days => CASE WHEN d BETWEEN 2185 AND 2199 THEN d - 20 ELSE d END,
                             hours => k * 7 % 24),
       (ARRAY['Do you offer a discount for non-profits?', 'Can I migrate my lists from another provider?',
              'Please call me back about the enterprise plan.', 'Is there an on-premises version?',
              'Your unsubscribe link did not work for me.'])[1 + k % 5]
FROM (SELECT k, 1 + (k * 6007) % 2920 AS d FROM generate_series(1, 1500) AS k) AS g, demo_names AS n;

-- Live chat -------------------------------------------------------------------------------------

INSERT INTO app.chat_transcripts (id, account_id, email, started_at, transcript)
SELECT k, acct,
       coalesce(a.email, 'guest' || k || '@example.net'),
       now() - make_interval(days => CASE WHEN d BETWEEN 2185 AND 2199 THEN d - 20 ELSE d END,
                             hours => k * 3 % 24),
       'visitor: ' || (ARRAY['Hi, is anyone there?', 'How do I verify my sending domain?',
                             'My campaign is stuck in the queue.'])[1 + k % 3] || E'\n' ||
       'agent: Happy to help' || coalesce(', ' || a.full_name, '') || '! Let me check that for you.'
FROM (SELECT k, acct,
             1 + (k * 3571) % (CASE WHEN acct IS NULL THEN 2920 ELSE least(2920, 4400 - 12 * acct - 2) END) AS d
      FROM (SELECT k, CASE WHEN k % 3 = 0 THEN NULL ELSE 1 + (k * 11) % 260 END AS acct
            FROM generate_series(1, 900) AS k) AS g0) AS g
LEFT JOIN app.accounts AS a ON a.id = g.acct;

INSERT INTO app.chat_transcripts (id, account_id, email, started_at, transcript)
SELECT 900 + row_number() OVER (ORDER BY s.acct), s.acct, a.email, now() - make_interval(days => s.age),
       E'visitor: I need our old correspondence for a dispute.\nagent: Noted, we keep it for you.'
FROM (VALUES (293, 100), (296, 100), (297, 150), (300, 2750)) AS s(acct, age)
JOIN app.accounts AS a ON a.id = s.acct;

-- Legal holds (registry) ------------------------------------------------------------------------

INSERT INTO retention.holds (id, subject, subject_key, reason, placed_by, placed_at, expires_at,
                             released_at, released_by)
VALUES (1, 'account', '293', 'Litigation hold, case LIT-2024-117', 'legal-team', now() - interval '60 days', NULL, NULL, NULL),
       (2, 'account', '294', 'Regulator inquiry REG-88', 'dpo', now() - interval '25 days', NULL, NULL, NULL),
       (3, 'account', '295', 'Fraud investigation FR-310', 'legal-team', now() - interval '40 days',
        now() + interval '90 days', NULL, NULL),
       (4, 'account', '298', 'Litigation hold, case LIT-2023-042 (settled)', 'legal-team',
        now() - interval '100 days', NULL, now() - interval '10 days', 'legal-team'),
       (5, 'account', '299', 'Chargeback dispute CB-7781', 'billing', now() - interval '200 days',
        now() - interval '5 days', NULL, NULL),
       (6, 'account', '300', 'Litigation hold, case LIT-2025-009', 'legal-team', now() - interval '30 days',
        now() + interval '365 days', NULL, NULL);

INSERT INTO retention.hold_events (hold_id, event, at, by)
SELECT id, 'placed', placed_at, placed_by FROM retention.holds
UNION ALL
SELECT id, 'released', released_at, released_by FROM retention.holds WHERE released_at IS NOT NULL
ORDER BY 3;

-- Sequences continue after the explicit ids above.
DO $$
BEGIN
        PERFORM setval('app.accounts_id_seq', 300);
        PERFORM setval('app.invoices_id_seq', 2431);
        PERFORM setval('app.support_tickets_id_seq', 1209);
        PERFORM setval('app.contact_messages_id_seq', 1500);
        PERFORM setval('app.chat_transcripts_id_seq', 904);
        PERFORM setval('retention.holds_id_seq', 6);
END;
$$;

DROP TABLE demo_names;

-- Statistics, so that the row estimates the circuit breaker reads exist.
ANALYZE app.access_log, app.accounts, app.invoices, app.support_tickets, app.contact_messages,
        app.chat_transcripts;
