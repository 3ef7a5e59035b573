-- Used private_key_jwt assertion ids (RFC 7523 jti), kept until the assertion expires so a
-- replay fails on every node. Expired rows are deleted as new ones arrive.
CREATE TABLE client_assertions (
    client_id  TEXT NOT NULL,
    jti        TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (client_id, jti)
);
CREATE INDEX client_assertions_expiry ON client_assertions (expires_at);
