-- The job's result as Parquet too (issue 21), made by the consumer: each
-- window writes a Parquet part beside its object part, and finalize
-- splices the parts into one file beside the object.

-- A window's Parquet part size (0: none, Parquet was off when it ran).
ALTER TABLE job_chunks ADD COLUMN parquet_bytes INTEGER NOT NULL DEFAULT 0;
-- The finished Parquet file; NULL when the job has none.
ALTER TABLE queue_jobs ADD COLUMN parquet_key TEXT;
ALTER TABLE queue_jobs ADD COLUMN parquet_bytes INTEGER;
