//! Upstream faults and timeouts (being written).
