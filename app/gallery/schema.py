"""The gallery's on-disk format: the SQLite schema and the markers that name its version."""

DB_NAME = "gallery.db"
FORMAT_NAME = "unisight-gallery"
SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS identities (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE COLLATE NOCASE,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS samples (
    id INTEGER PRIMARY KEY,
    identity_id INTEGER NOT NULL REFERENCES identities(id) ON DELETE CASCADE,
    enrolled_model TEXT NOT NULL,          -- the model_id that embedded it at enrolment
    crop_jpeg BLOB,                        -- upright crop, ~2x the face box (app.gallery.face_crop)
    face_x1 REAL, face_y1 REAL, face_x2 REAL, face_y2 REAL,  -- face box inside the crop
    quality REAL,
    source TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS samples_by_identity ON samples(identity_id);
CREATE TABLE IF NOT EXISTS embeddings (
    sample_id INTEGER NOT NULL REFERENCES samples(id) ON DELETE CASCADE,
    model_id TEXT NOT NULL,
    vector BLOB NOT NULL,                  -- 128 float32 little-endian, unit length
    created REAL NOT NULL,
    PRIMARY KEY (sample_id, model_id)
);
CREATE INDEX IF NOT EXISTS embeddings_by_model ON embeddings(model_id);
"""
