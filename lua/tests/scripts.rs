//! Every script of `lua/`, with the prelude its wrapper puts before it, compiles in a real Redis.

use fred::prelude::{ClientLike, LuaInterface};

#[tokio::test]
async fn every_script_compiles_in_redis() {
    let url = testkit::redis_url();
    let redis = redis_store::connect(&url, 1, std::time::Duration::from_secs(2))
        .await
        .expect("redis configured");
    for (name, source) in redis_store::scripts::sources() {
        let loaded: Result<String, _> = redis.next().script_load(source.clone()).await;
        assert!(loaded.is_ok(), "{name}: {loaded:?}");
    }
    let _ = redis.quit().await;
}
