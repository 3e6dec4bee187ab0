-- The start of the range the high-water mark vouches for (issue #15): `loaded_from` to
-- `loaded_until` is landed without a gap. The morning summary of a day waits until that range
-- covers the whole day, so the first start (yesterday still being back-filled) never mails a
-- summary of a day half loaded. An existing mark vouches for nothing before itself.
ALTER TABLE pipeline_watermark ADD COLUMN IF NOT EXISTS loaded_from timestamptz;
UPDATE pipeline_watermark SET loaded_from = loaded_until WHERE loaded_from IS NULL;
ALTER TABLE pipeline_watermark ALTER COLUMN loaded_from SET NOT NULL;
