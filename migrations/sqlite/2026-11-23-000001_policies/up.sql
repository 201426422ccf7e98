CREATE TABLE documents (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    slug TEXT NOT NULL UNIQUE,
    created_at TIMESTAMP NOT NULL
);

-- One row per published file; locale '' is the original. Rows are never updated or deleted.
CREATE TABLE versions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    document_id BIGINT NOT NULL REFERENCES documents (id),
    version INTEGER NOT NULL CHECK (version >= 1),
    locale TEXT NOT NULL,
    title TEXT NOT NULL,
    effective TIMESTAMP NOT NULL,
    material BOOLEAN NOT NULL,
    summary TEXT,
    part_of TEXT,
    acceptance TEXT NOT NULL CHECK (acceptance IN ('required', 'informational')),
    sha256 TEXT NOT NULL,
    source TEXT NOT NULL,
    body TEXT NOT NULL,
    html TEXT NOT NULL,
    toc TEXT NOT NULL,
    published_at TIMESTAMP NOT NULL,
    UNIQUE (document_id, version, locale)
);
