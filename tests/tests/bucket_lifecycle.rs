//! The bucket's lifecycle rules: multipart uploads nobody finished (a client
//! or an instance that went away, an abort that failed) are aborted by S3
//! itself after a day, behind the components' aborts and the worker's
//! sweeper; objects never expire.

use xtream_tests::Garage;
use xtream_tests::garage::BUCKET_LIFECYCLE;
use xtream_tests::s3::LifecycleRule;

#[test]
fn the_rules_abort_unfinished_multipart_uploads_after_a_day_and_keep_objects() {
    let rules = LifecycleRule::parse_all(BUCKET_LIFECYCLE);
    assert_eq!(rules.len(), 1, "{rules:?}");
    let rule = &rules[0];
    assert!(rule.enabled, "{rule:?}");
    assert_eq!(rule.abort_incomplete_multipart_after_days, Some(1));
    assert!(!rule.expires_objects, "videos must never expire");
}

#[tokio::test]
async fn the_test_bucket_has_the_lifecycle_rules() {
    let garage = Garage::start().await.unwrap();
    let answered = garage.bucket().lifecycle().await.unwrap();
    assert_eq!(answered, LifecycleRule::parse_all(BUCKET_LIFECYCLE));
}
