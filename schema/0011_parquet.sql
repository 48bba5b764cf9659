-- Issue 21. The job's result as Parquet too, made by the consumer: each
-- window writes a Parquet part beside its object part, and finalize
-- splices the parts into one file beside the object.

-- A window's Parquet part size (0: none, Parquet was off when it ran).
ALTER TABLE job_chunks ADD COLUMN parquet_bytes INTEGER NOT NULL DEFAULT 0;
-- The finished Parquet file; NULL when the job has none.
ALTER TABLE queue_jobs ADD COLUMN parquet_key TEXT;
ALTER TABLE queue_jobs ADD COLUMN parquet_bytes INTEGER;

-- Where each block is in the object, so a short chart range reads only
-- its blocks (GET /v1/series from samples): the object is the header,
-- then every window's part in plan order, each its points' blocks in
-- point order.
-- A window's block sizes, a JSON array in the job's point order.
ALTER TABLE job_chunks ADD COLUMN point_bytes TEXT;
-- The result header's size (the first gzip member of the object).
ALTER TABLE queue_jobs ADD COLUMN result_header_bytes INTEGER;
