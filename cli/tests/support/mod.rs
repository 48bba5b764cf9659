//! Helpers shared by the CLI's test binaries (`cli.rs`, `e2e.rs`).

use tsp_format::codec::Decoded;

/// A Parquet file's rows as `(point, time, value)`, text samples as text.
pub fn parquet_rows(bytes: Vec<u8>) -> Vec<(String, i64, Decoded)> {
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float64Type, Int32Type, TimestampMillisecondType};
    use arrow_array::Array;
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        bytes::Bytes::from(bytes),
    )
    .expect("a Parquet file")
    .build()
    .expect("a reader");
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.expect("a batch");
        let point = batch.column(0).as_dictionary::<Int32Type>();
        let names = point.values().as_string::<i32>();
        let time = batch.column(1).as_primitive::<TimestampMillisecondType>();
        let value = batch.column(2).as_primitive::<Float64Type>();
        let text = batch.column(3).as_string::<i32>();
        for i in 0..batch.num_rows() {
            let v = if value.is_null(i) {
                Decoded::Text(text.value(i).to_owned())
            } else {
                Decoded::Number(value.value(i))
            };
            let name = names.value(point.keys().value(i) as usize).to_owned();
            rows.push((name, time.value(i), v));
        }
    }
    rows
}
