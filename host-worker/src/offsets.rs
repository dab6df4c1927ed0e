//! Which offsets may be committed while several jobs run at once.
//!
//! Committing offset N of a partition tells the group that everything
//! before N is done. With jobs finishing out of order, a partition's commit
//! position may only move past offsets whose jobs have all finished; a job
//! still running (or released at shutdown) holds it back, so that job's
//! event is redelivered after a crash.

use std::collections::{BTreeMap, HashMap};

/// A topic partition.
pub type Partition = (String, i32);

/// The offsets taken and finished, per partition.
#[derive(Debug, Default)]
pub struct OffsetTracker {
    /// Per partition: offset → finished?
    partitions: HashMap<Partition, BTreeMap<i64, bool>>,
}

impl OffsetTracker {
    /// A job took the record at `offset`.
    pub fn started(&mut self, partition: &Partition, offset: i64) {
        self.partitions
            .entry(partition.clone())
            .or_default()
            .insert(offset, false);
    }

    /// The job of `offset` is done (its outputs are durable). Returns the
    /// offset to commit for the partition (the next one to read), if the
    /// commit position moved.
    pub fn finished(&mut self, partition: &Partition, offset: i64) -> Option<i64> {
        let offsets = self.partitions.get_mut(partition)?;
        *offsets.get_mut(&offset)? = true;
        let mut commit = None;
        while let Some(entry) = offsets.first_entry() {
            if !*entry.get() {
                break;
            }
            commit = Some(*entry.key() + 1);
            entry.remove();
        }
        commit
    }

    /// The partition went to another consumer: whatever runs there now
    /// will be redelivered to the new owner, so forget it.
    pub fn revoked(&mut self, partition: &Partition) {
        self.partitions.remove(partition);
    }

    /// Records taken and not yet finished.
    pub fn in_flight(&self) -> usize {
        self.partitions
            .values()
            .flat_map(|o| o.values())
            .filter(|done| !**done)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(n: i32) -> Partition {
        ("uploads".to_owned(), n)
    }

    #[test]
    fn commits_in_order_when_jobs_finish_in_order() {
        let mut t = OffsetTracker::default();
        t.started(&p(0), 5);
        t.started(&p(0), 6);
        assert_eq!(t.finished(&p(0), 5), Some(6));
        assert_eq!(t.finished(&p(0), 6), Some(7));
        assert_eq!(t.in_flight(), 0);
    }

    #[test]
    fn a_running_job_holds_back_later_commits() {
        let mut t = OffsetTracker::default();
        for offset in [10, 11, 12] {
            t.started(&p(1), offset);
        }
        assert_eq!(t.finished(&p(1), 12), None);
        assert_eq!(t.finished(&p(1), 11), None);
        assert_eq!(t.in_flight(), 1);
        assert_eq!(t.finished(&p(1), 10), Some(13));
    }

    #[test]
    fn partitions_are_independent() {
        let mut t = OffsetTracker::default();
        t.started(&p(0), 1);
        t.started(&p(1), 1);
        assert_eq!(t.finished(&p(1), 1), Some(2));
        assert_eq!(t.in_flight(), 1);
    }

    #[test]
    fn revoked_partitions_commit_nothing_more() {
        let mut t = OffsetTracker::default();
        t.started(&p(0), 3);
        t.revoked(&p(0));
        assert_eq!(t.finished(&p(0), 3), None);
        assert_eq!(t.in_flight(), 0);
    }
}
