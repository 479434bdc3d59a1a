-- sql/examples/rental-shop.sql — the schema of policies/examples/rental-shop.yaml: a small video
-- rental shop in the manner of pagila (customers, addresses shared with stores and staff, rentals,
-- payments). Tables only, no data; tests/db/test-reverse.c fills them. Never run it on a database
-- that has a schema "shop" of its own: it creates that schema.
CREATE SCHEMA shop;
CREATE TABLE shop.address (
        address_id int PRIMARY KEY,
        address text NOT NULL,
        phone text,
        created_at timestamptz
);
CREATE INDEX ON shop.address (created_at);
CREATE TABLE shop.store (store_id int PRIMARY KEY, address_id int NOT NULL REFERENCES shop.address);
CREATE INDEX ON shop.store (address_id);
CREATE TABLE shop.staff (staff_id int PRIMARY KEY, address_id int REFERENCES shop.address);
CREATE INDEX ON shop.staff (address_id);
CREATE TABLE shop.customer (
        customer_id int PRIMARY KEY,
        address_id int REFERENCES shop.address ON DELETE RESTRICT,
        first_name text NOT NULL,
        email text,
        last_active timestamptz
);
CREATE INDEX ON shop.customer (address_id);
CREATE INDEX ON shop.customer (last_active);
CREATE TABLE shop.rental (
        rental_id int PRIMARY KEY,
        customer_id int NOT NULL REFERENCES shop.customer,
        rental_date timestamptz
);
CREATE INDEX ON shop.rental (customer_id);
CREATE INDEX ON shop.rental (rental_date);
CREATE TABLE shop.payment (
        payment_id int PRIMARY KEY,
        rental_id int REFERENCES shop.rental,
        amount numeric(6,2),
        payment_date timestamptz
);
CREATE INDEX ON shop.payment (rental_id);
CREATE INDEX ON shop.payment (payment_date);
