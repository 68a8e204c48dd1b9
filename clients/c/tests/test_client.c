/*
 * The C client against a live ledgerd: every call, typed errors with details, replays, pipelining,
 * refusals (server name, unknown principal, foreign CA, missing files, no server, a silent server),
 * and a server restart that the client's retries ride through. `make check` runs it under valgrind
 * (leaks and memory errors fail the run).
 */
#define _GNU_SOURCE
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ledgerd.h"
#include "tokenledger.h"

static int failures = 0;
static int checks = 0;

#define CHECK(condition)                                                              \
    do {                                                                              \
        checks++;                                                                     \
        if (!(condition)) {                                                           \
            failures++;                                                               \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #condition); \
        }                                                                             \
    } while (0)

/* A call's code is the expected one; otherwise print what came instead. */
#define CHECK_CODE(call, expected, error)                                                          \
    do {                                                                                           \
        tl_code got_ = (call);                                                                     \
        checks++;                                                                                  \
        if (got_ != (expected)) {                                                                  \
            failures++;                                                                            \
            fprintf(stderr, "%s:%d: %s returned %s (%s), expected %s\n", __FILE__, __LINE__, #call, \
                    tl_code_name(got_), (error).message, tl_code_name(expected));                  \
        }                                                                                          \
    } while (0)

static ledgerd server;

static tl_client *connect_admin(uint32_t attempts) {
    tl_options options;
    tl_options_init(&options);
    options.port = server.port;
    options.data_dir = server.data_dir;
    options.attempts = attempts;
    options.backoff_ms = 20;
    tl_client *client = NULL;
    tl_error error;
    tl_code code = tl_connect(&options, &client, &error);
    if (code != TL_OK) {
        fprintf(stderr, "connect: %s: %s\n", tl_code_name(code), error.message);
        exit(1);
    }
    return client;
}

static void create_tenant(tl_client *client, const char *tenant, uint64_t promo) {
    tl_error error;
    Tokenledger__V1__CreateTenantRequest create = TOKENLEDGER__V1__CREATE_TENANT_REQUEST__INIT;
    create.tenant = (char *)tenant;
    Tokenledger__V1__CreateTenantResult *created;
    CHECK_CODE(tl_create_tenant(client, &create, &created, &error), TL_OK, error);
    tl_result_free(created);
    if (promo == 0) return;
    Tokenledger__V1__GrantRequest grant = TOKENLEDGER__V1__GRANT_REQUEST__INIT;
    grant.tenant = (char *)tenant;
    grant.kind = TOKENLEDGER__V1__GRANT_KIND__GRANT_KIND_PROMO;
    grant.amount = promo;
    Tokenledger__V1__GrantResult *granted;
    CHECK_CODE(tl_grant(client, &grant, &granted, &error), TL_OK, error);
    tl_result_free(granted);
}

static tl_code reserve_tokens(tl_client *client, const char *tenant, const char *hold, const char *member,
                              uint64_t tokens, const char *request_id, tl_error *error) {
    Tokenledger__V1__ReserveRequest reserve = TOKENLEDGER__V1__RESERVE_REQUEST__INIT;
    reserve.tenant = (char *)tenant;
    reserve.hold_id = (char *)hold;
    reserve.member = (char *)(member ? member : "");
    reserve.request_id = (char *)(request_id ? request_id : "");
    reserve.amount_case = TOKENLEDGER__V1__RESERVE_REQUEST__AMOUNT_TOKENS;
    reserve.tokens = tokens;
    Tokenledger__V1__ReserveResult *result;
    tl_code code = tl_reserve(client, &reserve, &result, error);
    tl_result_free(result);
    return code;
}

static tl_code commit_tokens(tl_client *client, const char *tenant, const char *hold, uint64_t amount,
                             tl_error *error) {
    Tokenledger__V1__CommitRequest commit = TOKENLEDGER__V1__COMMIT_REQUEST__INIT;
    commit.tenant = (char *)tenant;
    commit.hold_id = (char *)hold;
    commit.amount = amount;
    Tokenledger__V1__CommitResult *result;
    tl_code code = tl_commit(client, &commit, &result, error);
    tl_result_free(result);
    return code;
}

/* Every RPC once, with the worked example of the docs (37 minutes of transcription: 296 tokens). */
static void test_every_call(void) {
    tl_client *client = connect_admin(3);
    tl_error error;

    Tokenledger__V1__HealthRequest health_request = TOKENLEDGER__V1__HEALTH_REQUEST__INIT;
    Tokenledger__V1__HealthResult *health;
    CHECK_CODE(tl_health(client, &health_request, &health, &error), TL_OK, error);
    if (health != NULL) {
        CHECK(strcmp(health->status, "serving") == 0);
        CHECK(strcmp(health->principal, "admin") == 0);
        CHECK(health->role == TOKENLEDGER__V1__ROLE__ROLE_ADMIN);
        CHECK(health->shard_count > 0);
    }
    tl_result_free(health);

    /* The embedded mode's shard map: no cluster, no owners. */
    Tokenledger__V1__ShardMapRequest map_request = TOKENLEDGER__V1__SHARD_MAP_REQUEST__INIT;
    Tokenledger__V1__ShardMapResult *map;
    CHECK_CODE(tl_shard_map(client, &map_request, &map, &error), TL_OK, error);
    if (map != NULL) CHECK(!map->cluster && map->shard_count > 0 && map->n_shards == 0);
    tl_result_free(map);

    Tokenledger__V1__CatalogRequest catalog_request = TOKENLEDGER__V1__CATALOG_REQUEST__INIT;
    Tokenledger__V1__CatalogResult *catalog;
    CHECK_CODE(tl_catalog(client, &catalog_request, &catalog, &error), TL_OK, error);
    if (catalog != NULL) {
        CHECK(strcmp(catalog->version, "demo-2026-11") == 0);
        int has_transcription = 0;
        for (size_t i = 0; i < catalog->n_features; i++) {
            if (strcmp(catalog->features[i]->name, "transcription") == 0) has_transcription = catalog->features[i]->rate == 8;
        }
        CHECK(has_transcription);
    }
    tl_result_free(catalog);

    /* A tenant with a monthly plan of 3,000,000 tokens. */
    Tokenledger__V1__Period month = TOKENLEDGER__V1__PERIOD__INIT;
    month.unit = TOKENLEDGER__V1__PERIOD_UNIT__PERIOD_UNIT_MONTH;
    Tokenledger__V1__Plan plan = TOKENLEDGER__V1__PLAN__INIT;
    plan.allowance = 3000000;
    plan.period = &month;
    Tokenledger__V1__TenantSettings settings = TOKENLEDGER__V1__TENANT_SETTINGS__INIT;
    settings.plan = &plan;
    Tokenledger__V1__CreateTenantRequest create = TOKENLEDGER__V1__CREATE_TENANT_REQUEST__INIT;
    create.tenant = "acme";
    create.settings = &settings;
    Tokenledger__V1__CreateTenantResult *created;
    CHECK_CODE(tl_create_tenant(client, &create, &created, &error), TL_OK, error);
    CHECK(created != NULL && strcmp(created->tenant, "acme") == 0);
    tl_result_free(created);

    Tokenledger__V1__ConfigureTenantRequest configure = TOKENLEDGER__V1__CONFIGURE_TENANT_REQUEST__INIT;
    configure.tenant = "acme";
    configure.threshold_case = TOKENLEDGER__V1__CONFIGURE_TENANT_REQUEST__THRESHOLD_LOW_BALANCE_THRESHOLD;
    configure.low_balance_threshold = 1000;
    Tokenledger__V1__ConfigureTenantResult *configured;
    CHECK_CODE(tl_configure_tenant(client, &configure, &configured, &error), TL_OK, error);
    tl_result_free(configured);

    Tokenledger__V1__Period day = TOKENLEDGER__V1__PERIOD__INIT;
    day.unit = TOKENLEDGER__V1__PERIOD_UNIT__PERIOD_UNIT_DAY;
    Tokenledger__V1__Budget budget = TOKENLEDGER__V1__BUDGET__INIT;
    budget.cap = 10000;
    budget.period = &day;
    Tokenledger__V1__SetMemberRequest set_member = TOKENLEDGER__V1__SET_MEMBER_REQUEST__INIT;
    set_member.tenant = "acme";
    set_member.member = "ana";
    set_member.budget = &budget;
    Tokenledger__V1__SetMemberResult *member;
    CHECK_CODE(tl_set_member(client, &set_member, &member, &error), TL_OK, error);
    CHECK(member != NULL && member->member != NULL && member->member->budget != NULL &&
          member->member->budget->cap == 10000);
    tl_result_free(member);

    Tokenledger__V1__PricedItem minutes = TOKENLEDGER__V1__PRICED_ITEM__INIT;
    minutes.feature = "transcription";
    minutes.quantity = 37;
    Tokenledger__V1__PricedItem *items[] = {&minutes};
    Tokenledger__V1__EstimateRequest estimate_request = TOKENLEDGER__V1__ESTIMATE_REQUEST__INIT;
    estimate_request.tenant = "acme";
    estimate_request.member = "ana";
    estimate_request.n_items = 1;
    estimate_request.items = items;
    Tokenledger__V1__EstimateResult *estimate;
    CHECK_CODE(tl_estimate(client, &estimate_request, &estimate, &error), TL_OK, error);
    CHECK(estimate != NULL && estimate->total == 296 && estimate->affordable);
    tl_result_free(estimate);

    Tokenledger__V1__PricedItems priced = TOKENLEDGER__V1__PRICED_ITEMS__INIT;
    priced.n_items = 1;
    priced.items = items;
    Tokenledger__V1__ReserveRequest reserve = TOKENLEDGER__V1__RESERVE_REQUEST__INIT;
    reserve.tenant = "acme";
    reserve.hold_id = "interview-1";
    reserve.member = "ana";
    reserve.amount_case = TOKENLEDGER__V1__RESERVE_REQUEST__AMOUNT_ITEMS;
    reserve.items = &priced;
    Tokenledger__V1__ReserveResult *reserved;
    CHECK_CODE(tl_reserve(client, &reserve, &reserved, &error), TL_OK, error);
    CHECK(reserved != NULL && reserved->hold->amount == 296 &&
          reserved->hold->state == TOKENLEDGER__V1__HOLD_STATE__HOLD_STATE_HELD);
    tl_result_free(reserved);

    Tokenledger__V1__CommitRequest commit = TOKENLEDGER__V1__COMMIT_REQUEST__INIT;
    commit.tenant = "acme";
    commit.hold_id = "interview-1";
    commit.amount = 280;
    Tokenledger__V1__CommitResult *committed;
    CHECK_CODE(tl_commit(client, &commit, &committed, &error), TL_OK, error);
    CHECK(committed != NULL && committed->captured == 280 && committed->released == 16);
    tl_result_free(committed);

    Tokenledger__V1__GrantRequest grant = TOKENLEDGER__V1__GRANT_REQUEST__INIT;
    grant.tenant = "acme";
    grant.kind = TOKENLEDGER__V1__GRANT_KIND__GRANT_KIND_PROMO;
    grant.amount = 500;
    grant.note = "welcome";
    Tokenledger__V1__GrantResult *promo;
    CHECK_CODE(tl_grant(client, &grant, &promo, &error), TL_OK, error);
    uint64_t promo_id = promo != NULL ? promo->grant->id : 0;
    CHECK(promo != NULL && promo->grant->amount == 500 && strcmp(promo->grant->note, "welcome") == 0);
    tl_result_free(promo);

    Tokenledger__V1__PurchaseRequest purchase_request = TOKENLEDGER__V1__PURCHASE_REQUEST__INIT;
    purchase_request.tenant = "acme";
    purchase_request.money_minor = 10000;
    Tokenledger__V1__PurchaseResult *purchase;
    CHECK_CODE(tl_purchase(client, &purchase_request, &purchase, &error), TL_OK, error);
    uint64_t purchase_id = purchase != NULL ? purchase->purchase->id : 0;
    CHECK(purchase != NULL && purchase->purchase->amount == 10000 && purchase->bonus != NULL &&
          purchase->bonus->amount == 750);
    tl_result_free(purchase);

    Tokenledger__V1__VoidGrantRequest void_request = TOKENLEDGER__V1__VOID_GRANT_REQUEST__INIT;
    void_request.tenant = "acme";
    void_request.grant_id = promo_id;
    Tokenledger__V1__VoidGrantResult *voided;
    CHECK_CODE(tl_void_grant(client, &void_request, &voided, &error), TL_OK, error);
    CHECK(voided != NULL && voided->voided == 500);
    tl_result_free(voided);

    Tokenledger__V1__RefundPurchaseRequest refund_purchase = TOKENLEDGER__V1__REFUND_PURCHASE_REQUEST__INIT;
    refund_purchase.tenant = "acme";
    refund_purchase.grant_id = purchase_id;
    Tokenledger__V1__RefundPurchaseResult *refunded_purchase;
    CHECK_CODE(tl_refund_purchase(client, &refund_purchase, &refunded_purchase, &error), TL_OK, error);
    CHECK(refunded_purchase != NULL && refunded_purchase->voided == 10000 &&
          refunded_purchase->money_refund_minor == 10000);
    tl_result_free(refunded_purchase);

    tl_error quiet;
    CHECK_CODE(reserve_tokens(client, "acme", "report-1", NULL, 100, NULL, &quiet), TL_OK, quiet);
    commit.hold_id = "report-1";
    commit.amount = 30;
    commit.partial = 1;
    CHECK_CODE(tl_commit(client, &commit, &committed, &error), TL_OK, error);
    CHECK(committed != NULL && committed->hold->state == TOKENLEDGER__V1__HOLD_STATE__HOLD_STATE_HELD);
    tl_result_free(committed);

    Tokenledger__V1__ReleaseRequest release = TOKENLEDGER__V1__RELEASE_REQUEST__INIT;
    release.tenant = "acme";
    release.hold_id = "report-1";
    Tokenledger__V1__ReleaseResult *released;
    CHECK_CODE(tl_release(client, &release, &released, &error), TL_OK, error);
    CHECK(released != NULL && released->released == 70);
    tl_result_free(released);

    Tokenledger__V1__RefundRequest refund = TOKENLEDGER__V1__REFUND_REQUEST__INIT;
    refund.tenant = "acme";
    refund.hold_id = "interview-1";
    refund.amount = 80;
    Tokenledger__V1__RefundResult *refunded;
    CHECK_CODE(tl_refund(client, &refund, &refunded, &error), TL_OK, error);
    CHECK(refunded != NULL && refunded->refunded == 80);
    tl_result_free(refunded);

    /* A hold that grows and lasts: raised, extended, then released. */
    Tokenledger__V1__ReserveRequest session = TOKENLEDGER__V1__RESERVE_REQUEST__INIT;
    session.request_id = "c-session-1";
    session.tenant = "acme";
    session.hold_id = "c-session-1";
    session.amount_case = TOKENLEDGER__V1__RESERVE_REQUEST__AMOUNT_TOKENS;
    session.tokens = 8;
    Tokenledger__V1__ReserveResult *opened;
    CHECK_CODE(tl_reserve(client, &session, &opened, &error), TL_OK, error);
    tl_result_free(opened);
    Tokenledger__V1__IncreaseHoldRequest raise = TOKENLEDGER__V1__INCREASE_HOLD_REQUEST__INIT;
    raise.request_id = "c-session-1-raise";
    raise.tenant = "acme";
    raise.hold_id = "c-session-1";
    raise.tokens = 8;
    Tokenledger__V1__IncreaseHoldResult *raised;
    CHECK_CODE(tl_increase_hold(client, &raise, &raised, &error), TL_OK, error);
    CHECK(raised != NULL && raised->increased == 8 && raised->hold != NULL && raised->hold->amount == 16);
    tl_result_free(raised);
    Tokenledger__V1__ExtendHoldRequest extend = TOKENLEDGER__V1__EXTEND_HOLD_REQUEST__INIT;
    extend.request_id = "c-session-1-extend";
    extend.tenant = "acme";
    extend.hold_id = "c-session-1";
    extend.ttl_ms = 600000;
    Tokenledger__V1__ExtendHoldResult *extended;
    CHECK_CODE(tl_extend_hold(client, &extend, &extended, &error), TL_OK, error);
    CHECK(extended != NULL && extended->hold != NULL && extended->hold->expires_at_ms > extended->hold->created_at_ms + 590000);
    tl_result_free(extended);
    raise.request_id = "c-session-1-raise-too-much";
    raise.tokens = 1000000000000ULL;
    CHECK(tl_increase_hold(client, &raise, &raised, &error) == TL_INSUFFICIENT_BALANCE);
    CHECK(error.details == TL_DETAILS_BALANCE && error.requested == 1000000000000ULL);
    Tokenledger__V1__ReleaseRequest end_session = TOKENLEDGER__V1__RELEASE_REQUEST__INIT;
    end_session.request_id = "c-session-1-release";
    end_session.tenant = "acme";
    end_session.hold_id = "c-session-1";
    Tokenledger__V1__ReleaseResult *ended;
    CHECK_CODE(tl_release(client, &end_session, &ended, &error), TL_OK, error);
    CHECK(ended != NULL && ended->released == 16);
    tl_result_free(ended);

    /* Listings: the open hold just made is listed; the tenant is among the tenants. */
    Tokenledger__V1__ReserveRequest listed = TOKENLEDGER__V1__RESERVE_REQUEST__INIT;
    listed.request_id = "c-listed";
    listed.tenant = "acme";
    listed.hold_id = "c-listed";
    listed.amount_case = TOKENLEDGER__V1__RESERVE_REQUEST__AMOUNT_TOKENS;
    listed.tokens = 3;
    CHECK_CODE(tl_reserve(client, &listed, &opened, &error), TL_OK, error);
    tl_result_free(opened);
    Tokenledger__V1__ListHoldsRequest list_holds = TOKENLEDGER__V1__LIST_HOLDS_REQUEST__INIT;
    list_holds.tenant = "acme";
    Tokenledger__V1__ListHoldsResult *holds;
    CHECK_CODE(tl_list_holds(client, &list_holds, &holds, &error), TL_OK, error);
    CHECK(holds != NULL && holds->n_holds == 1 && strcmp(holds->holds[0]->id, "c-listed") == 0 &&
          strcmp(holds->next_after_hold_id, "") == 0);
    tl_result_free(holds);
    Tokenledger__V1__ListGrantsRequest list_grants = TOKENLEDGER__V1__LIST_GRANTS_REQUEST__INIT;
    list_grants.tenant = "acme";
    list_grants.state = TOKENLEDGER__V1__GRANT_STATE__GRANT_STATE_VOIDED;
    Tokenledger__V1__ListGrantsResult *grants;
    CHECK_CODE(tl_list_grants(client, &list_grants, &grants, &error), TL_OK, error);
    CHECK(grants != NULL && grants->n_grants >= 1);
    tl_result_free(grants);
    Tokenledger__V1__ListTenantsRequest list_tenants = TOKENLEDGER__V1__LIST_TENANTS_REQUEST__INIT;
    Tokenledger__V1__ListTenantsResult *tenants;
    CHECK_CODE(tl_list_tenants(client, &list_tenants, &tenants, &error), TL_OK, error);
    CHECK(tenants != NULL && tenants->n_tenants >= 1 && strcmp(tenants->tenants[0], "acme") == 0);
    tl_result_free(tenants);
    Tokenledger__V1__ReleaseRequest unlist = TOKENLEDGER__V1__RELEASE_REQUEST__INIT;
    unlist.request_id = "c-listed-release";
    unlist.tenant = "acme";
    unlist.hold_id = "c-listed";
    CHECK_CODE(tl_release(client, &unlist, &ended, &error), TL_OK, error);
    tl_result_free(ended);

    /* A charge spends at once and is refunded by its id; its id cannot be used twice. */
    Tokenledger__V1__ChargeRequest charge = TOKENLEDGER__V1__CHARGE_REQUEST__INIT;
    charge.request_id = "c-charge-1";
    charge.tenant = "acme";
    charge.hold_id = "c-charge-1";
    charge.amount_case = TOKENLEDGER__V1__CHARGE_REQUEST__AMOUNT_TOKENS;
    charge.tokens = 50;
    Tokenledger__V1__ChargeResult *charged;
    CHECK_CODE(tl_charge(client, &charge, &charged, &error), TL_OK, error);
    CHECK(charged != NULL && charged->charged == 50 && charged->hold != NULL &&
          charged->hold->state == TOKENLEDGER__V1__HOLD_STATE__HOLD_STATE_COMMITTED);
    tl_result_free(charged);
    refund.request_id = "c-charge-1-refund";
    refund.hold_id = "c-charge-1";
    refund.amount = 50;
    CHECK_CODE(tl_refund(client, &refund, &refunded, &error), TL_OK, error);
    CHECK(refunded != NULL && refunded->refunded == 50);
    tl_result_free(refunded);
    charge.request_id = "c-charge-2";
    CHECK(tl_charge(client, &charge, &charged, &error) == TL_ALREADY_EXISTS);

    Tokenledger__V1__BalanceRequest balance_request = TOKENLEDGER__V1__BALANCE_REQUEST__INIT;
    balance_request.tenant = "acme";
    balance_request.member = "ana";
    Tokenledger__V1__BalanceResult *balance;
    CHECK_CODE(tl_balance(client, &balance_request, &balance, &error), TL_OK, error);
    if (balance != NULL) {
        CHECK(balance->spent == 280 + 30 - 80);
        CHECK(balance->meter != NULL && balance->meter->total == 3000000);
        CHECK(balance->member_budget != NULL && balance->member_budget->spent == 280 - 80);
        /* Conservation as the server reports it. */
        CHECK(balance->granted == balance->available + balance->reserved + balance->spent + balance->expired +
                                      balance->voided);
    }
    tl_result_free(balance);

    Tokenledger__V1__HistoryRequest history_request = TOKENLEDGER__V1__HISTORY_REQUEST__INIT;
    history_request.tenant = "acme";
    history_request.limit = 1000;
    Tokenledger__V1__HistoryResult *history;
    CHECK_CODE(tl_history(client, &history_request, &history, &error), TL_OK, error);
    if (history != NULL) {
        CHECK(history->n_entries > 10);
        int in_order = 1, captures = 0;
        for (size_t i = 0; i < history->n_entries; i++) {
            in_order &= history->entries[i]->sequence == i + 1;
            captures += history->entries[i]->kind == TOKENLEDGER__V1__HISTORY_KIND__HISTORY_KIND_CAPTURE;
        }
        CHECK(in_order);
        CHECK(captures == 3); /* the interview, the report, the charge */
        CHECK(history->next_cursor == 0);
    }
    tl_result_free(history);

    Tokenledger__V1__InstallCatalogRequest install = TOKENLEDGER__V1__INSTALL_CATALOG_REQUEST__INIT;
    /* v2 keeps transcription's and cover_image's prices (later tests use them) and adds x. */
    install.json = "{\"version\": \"v2\", \"features\": {\"x\": {\"unit\": \"u\", \"rate\": 3}, "
                   "\"transcription\": {\"unit\": \"minute\", \"rate\": 8}, "
                   "\"cover_image\": {\"unit\": \"image\", \"rate\": 25}}}";
    Tokenledger__V1__InstallCatalogResult *installed;
    CHECK_CODE(tl_install_catalog(client, &install, &installed, &error), TL_OK, error);
    CHECK(installed != NULL && strcmp(installed->version, "v2") == 0);
    tl_result_free(installed);
    minutes.feature = "x";
    minutes.quantity = 4;
    estimate_request.member = "";
    CHECK_CODE(tl_estimate(client, &estimate_request, &estimate, &error), TL_OK, error);
    CHECK(estimate != NULL && estimate->total == 12);
    tl_result_free(estimate);

    Tokenledger__V1__AdminSnapshotRequest snapshot_request = TOKENLEDGER__V1__ADMIN_SNAPSHOT_REQUEST__INIT;
    Tokenledger__V1__AdminSnapshotResult *snapshot;
    CHECK_CODE(tl_admin_snapshot(client, &snapshot_request, &snapshot, &error), TL_OK, error);
    CHECK(snapshot != NULL && snapshot->n_snapshot_lsns == 2);
    tl_result_free(snapshot);
    Tokenledger__V1__AdminAuditRequest audit_request = TOKENLEDGER__V1__ADMIN_AUDIT_REQUEST__INIT;
    Tokenledger__V1__AdminAuditResult *audit;
    CHECK_CODE(tl_admin_audit(client, &audit_request, &audit, &error), TL_OK, error);
    CHECK(audit != NULL && audit->tenants == 1 && audit->n_violations == 0);
    tl_result_free(audit);
    char backup_parent[] = "/tmp/tokenledger-c-backup-XXXXXX";
    CHECK(mkdtemp(backup_parent) != NULL);
    char backup_dir[64];
    snprintf(backup_dir, sizeof backup_dir, "%s/backup", backup_parent);
    Tokenledger__V1__AdminBackupRequest backup_request = TOKENLEDGER__V1__ADMIN_BACKUP_REQUEST__INIT;
    backup_request.directory = backup_dir;
    Tokenledger__V1__AdminBackupResult *backup;
    CHECK_CODE(tl_admin_backup(client, &backup_request, &backup, &error), TL_OK, error);
    CHECK(backup != NULL && backup->tenants == 1 && backup->n_shards == 2 && strcmp(backup->directory, backup_dir) == 0);
    tl_result_free(backup);
    char remove_command[96];
    snprintf(remove_command, sizeof remove_command, "rm -rf '%s'", backup_parent);
    CHECK(system(remove_command) == 0);

    /* A trace parent rides the calls that follow (ledgerd's own tests check the spans); one longer
     * than 255 bytes is misuse and leaves the last one in place; NULL stops it. */
    CHECK_CODE(tl_set_trace_parent(client, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", &error), TL_OK, error);
    char too_long[300];
    memset(too_long, 'a', sizeof too_long - 1);
    too_long[sizeof too_long - 1] = '\0';
    CHECK(tl_set_trace_parent(client, too_long, &error) == TL_ERR_USAGE);
    Tokenledger__V1__HealthRequest traced_request = TOKENLEDGER__V1__HEALTH_REQUEST__INIT;
    Tokenledger__V1__HealthResult *traced;
    CHECK_CODE(tl_health(client, &traced_request, &traced, &error), TL_OK, error);
    tl_result_free(traced);
    CHECK_CODE(tl_set_trace_parent(client, NULL, &error), TL_OK, error);

    tl_close(client);
}

/* Server errors come back as their codes, with details; client-side misuse as TL_ERR_USAGE. */
/* A plan quota (2 cover images a month) and a grant scoped to transcription. */
static void test_quotas_and_scopes(void) {
    tl_client *client = connect_admin(1);
    tl_error error;
    Tokenledger__V1__Period month = TOKENLEDGER__V1__PERIOD__INIT;
    month.unit = TOKENLEDGER__V1__PERIOD_UNIT__PERIOD_UNIT_MONTH;
    Tokenledger__V1__PlanQuota images = TOKENLEDGER__V1__PLAN_QUOTA__INIT;
    images.feature = "cover_image";
    images.limit = 2;
    Tokenledger__V1__PlanQuota *quotas[] = {&images};
    Tokenledger__V1__Plan plan = TOKENLEDGER__V1__PLAN__INIT;
    plan.allowance = 100;
    plan.period = &month;
    plan.n_quotas = 1;
    plan.quotas = quotas;
    Tokenledger__V1__TenantSettings settings = TOKENLEDGER__V1__TENANT_SETTINGS__INIT;
    settings.plan = &plan;
    Tokenledger__V1__CreateTenantRequest create = TOKENLEDGER__V1__CREATE_TENANT_REQUEST__INIT;
    create.tenant = "quota";
    create.settings = &settings;
    Tokenledger__V1__CreateTenantResult *created;
    CHECK_CODE(tl_create_tenant(client, &create, &created, &error), TL_OK, error);
    tl_result_free(created);

    char *scope[] = {"transcription"};
    Tokenledger__V1__GrantRequest grant = TOKENLEDGER__V1__GRANT_REQUEST__INIT;
    grant.tenant = "quota";
    grant.kind = TOKENLEDGER__V1__GRANT_KIND__GRANT_KIND_PROMO;
    grant.amount = 80;
    grant.n_scope = 1;
    grant.scope = scope;
    Tokenledger__V1__GrantResult *granted;
    CHECK_CODE(tl_grant(client, &grant, &granted, &error), TL_OK, error);
    CHECK(granted != NULL && granted->grant->n_scope == 1 && strcmp(granted->grant->scope[0], "transcription") == 0);
    tl_result_free(granted);

    Tokenledger__V1__PricedItem image = TOKENLEDGER__V1__PRICED_ITEM__INIT;
    image.feature = "cover_image";
    image.quantity = 2;
    Tokenledger__V1__PricedItem *items[] = {&image};
    Tokenledger__V1__PricedItems priced = TOKENLEDGER__V1__PRICED_ITEMS__INIT;
    priced.n_items = 1;
    priced.items = items;
    Tokenledger__V1__ChargeRequest charge = TOKENLEDGER__V1__CHARGE_REQUEST__INIT;
    charge.tenant = "quota";
    charge.hold_id = "img-1";
    charge.amount_case = TOKENLEDGER__V1__CHARGE_REQUEST__AMOUNT_ITEMS;
    charge.items = &priced;
    Tokenledger__V1__ChargeResult *charged;
    CHECK_CODE(tl_charge(client, &charge, &charged, &error), TL_OK, error);
    tl_result_free(charged);
    image.quantity = 1;
    charge.hold_id = "img-2";
    CHECK(tl_charge(client, &charge, &charged, &error) == TL_QUOTA_EXCEEDED);
    CHECK(error.details == TL_DETAILS_QUOTA && strcmp(error.feature, "cover_image") == 0 && error.used == 2 &&
          error.cap == 2 && error.requested == 1 && error.resets_at_ms > 0);
    CHECK(strcmp(tl_code_name(TL_QUOTA_EXCEEDED), "quota_exceeded") == 0);

    Tokenledger__V1__BalanceRequest balance_request = TOKENLEDGER__V1__BALANCE_REQUEST__INIT;
    balance_request.tenant = "quota";
    Tokenledger__V1__BalanceResult *balance;
    CHECK_CODE(tl_balance(client, &balance_request, &balance, &error), TL_OK, error);
    CHECK(balance != NULL && balance->n_quotas == 1 && strcmp(balance->quotas[0]->feature, "cover_image") == 0 &&
          balance->quotas[0]->used == 2 && balance->quotas[0]->limit == 2);
    int scoped = 0;
    for (size_t i = 0; balance != NULL && i < balance->n_buckets; i++) scoped += balance->buckets[i]->n_scope;
    CHECK(scoped == 1);
    CHECK(balance != NULL && balance->movement_events);
    tl_result_free(balance);

    /* A member with a further threshold of 10% of its budget. */
    Tokenledger__V1__Threshold tenth = TOKENLEDGER__V1__THRESHOLD__INIT;
    tenth.kind_case = TOKENLEDGER__V1__THRESHOLD__KIND_PERCENT;
    tenth.percent = 10;
    Tokenledger__V1__Threshold *thresholds[] = {&tenth};
    Tokenledger__V1__Budget budget = TOKENLEDGER__V1__BUDGET__INIT;
    budget.cap = 100;
    budget.period = &month;
    Tokenledger__V1__SetMemberRequest set_member = TOKENLEDGER__V1__SET_MEMBER_REQUEST__INIT;
    set_member.tenant = "quota";
    set_member.member = "ana";
    set_member.budget = &budget;
    set_member.n_low_balance_thresholds = 1;
    set_member.low_balance_thresholds = thresholds;
    Tokenledger__V1__SetMemberResult *member;
    CHECK_CODE(tl_set_member(client, &set_member, &member, &error), TL_OK, error);
    CHECK(member != NULL && member->member->n_low_balance_thresholds == 1 &&
          member->member->low_balance_thresholds[0]->percent == 10);
    tl_result_free(member);
    tl_close(client);
}

static void test_typed_errors(void) {
    tl_client *client = connect_admin(1);
    tl_error error;
    create_tenant(client, "errors", 100);

    Tokenledger__V1__Period day = TOKENLEDGER__V1__PERIOD__INIT;
    day.unit = TOKENLEDGER__V1__PERIOD_UNIT__PERIOD_UNIT_DAY;
    Tokenledger__V1__Budget budget = TOKENLEDGER__V1__BUDGET__INIT;
    budget.cap = 5;
    budget.period = &day;
    Tokenledger__V1__SetMemberRequest set_member = TOKENLEDGER__V1__SET_MEMBER_REQUEST__INIT;
    set_member.tenant = "errors";
    set_member.member = "ana";
    set_member.budget = &budget;
    Tokenledger__V1__SetMemberResult *member;
    CHECK_CODE(tl_set_member(client, &set_member, &member, &error), TL_OK, error);
    tl_result_free(member);

    CHECK_CODE(reserve_tokens(client, "errors", "zero", NULL, 0, NULL, &error), TL_INVALID_ARGUMENT, error);
    CHECK(error.code == TL_INVALID_ARGUMENT && error.message[0] != '\0');

    Tokenledger__V1__BalanceRequest balance = TOKENLEDGER__V1__BALANCE_REQUEST__INIT;
    balance.tenant = "nobody";
    Tokenledger__V1__BalanceResult *no_balance = (void *)1;
    CHECK_CODE(tl_balance(client, &balance, &no_balance, &error), TL_NOT_FOUND, error);
    CHECK(no_balance == NULL);

    Tokenledger__V1__CreateTenantRequest again = TOKENLEDGER__V1__CREATE_TENANT_REQUEST__INIT;
    again.tenant = "errors";
    Tokenledger__V1__CreateTenantResult *created;
    CHECK_CODE(tl_create_tenant(client, &again, &created, &error), TL_ALREADY_EXISTS, error);

    CHECK_CODE(reserve_tokens(client, "errors", "big", NULL, 1000, NULL, &error), TL_INSUFFICIENT_BALANCE, error);
    CHECK(error.details == TL_DETAILS_BALANCE && error.available == 100 && error.requested == 1000);

    CHECK_CODE(reserve_tokens(client, "errors", "b", "ana", 10, NULL, &error), TL_BUDGET_EXCEEDED, error);
    CHECK(error.details == TL_DETAILS_BUDGET && error.cap == 5 && error.remaining == 5 && error.resets_at_ms > 0);

    CHECK_CODE(reserve_tokens(client, "errors", "h", NULL, 10, NULL, &error), TL_OK, error);
    CHECK(error.code == TL_OK && error.details == TL_DETAILS_NONE);
    CHECK_CODE(commit_tokens(client, "errors", "h", 10, &error), TL_OK, error);
    CHECK_CODE(commit_tokens(client, "errors", "h", 1, &error), TL_ALREADY_COMMITTED, error);
    CHECK_CODE(commit_tokens(client, "errors", "missing", 1, &error), TL_NOT_FOUND, error);

    /* The same request id: the same command is replayed, another one conflicts. */
    CHECK_CODE(reserve_tokens(client, "errors", "r", NULL, 1, "same", &error), TL_OK, error);
    CHECK_CODE(reserve_tokens(client, "errors", "r2", NULL, 2, "same", &error), TL_IDEMPOTENCY_CONFLICT, error);
    Tokenledger__V1__ReserveRequest replay = TOKENLEDGER__V1__RESERVE_REQUEST__INIT;
    replay.request_id = "same";
    replay.tenant = "errors";
    replay.hold_id = "r";
    replay.amount_case = TOKENLEDGER__V1__RESERVE_REQUEST__AMOUNT_TOKENS;
    replay.tokens = 1;
    Tokenledger__V1__Request request = TOKENLEDGER__V1__REQUEST__INIT;
    request.call_case = TOKENLEDGER__V1__REQUEST__CALL_RESERVE;
    request.reserve = &replay;
    Tokenledger__V1__Response *response;
    CHECK_CODE(tl_call(client, &request, &response, &error), TL_OK, error);
    CHECK(response != NULL && response->replayed && response->reserve->hold->amount == 1);
    tl_response_free(response);

    Tokenledger__V1__HistoryRequest history = TOKENLEDGER__V1__HISTORY_REQUEST__INIT;
    history.tenant = "errors";
    history.limit = 1001;
    Tokenledger__V1__HistoryResult *page;
    CHECK_CODE(tl_history(client, &history, &page, &error), TL_LIMIT_EXCEEDED, error);
    CHECK(error.details == TL_DETAILS_LIMIT && error.limit_value == 1000 && error.limit_name[0] != '\0');

    /* Refused on the client's side, before anything is sent: a request above frame_size_max. */
    size_t large = (1u << 20) + 1;
    char *note = malloc(large + 1);
    memset(note, 'n', large);
    note[large] = '\0';
    Tokenledger__V1__GrantRequest grant = TOKENLEDGER__V1__GRANT_REQUEST__INIT;
    grant.tenant = "errors";
    grant.kind = TOKENLEDGER__V1__GRANT_KIND__GRANT_KIND_PROMO;
    grant.amount = 1;
    grant.note = note;
    Tokenledger__V1__GrantResult *granted;
    CHECK_CODE(tl_grant(client, &grant, &granted, &error), TL_LIMIT_EXCEEDED, error);
    CHECK(error.details == TL_DETAILS_LIMIT && strcmp(error.limit_name, "frame_size_max") == 0);
    free(note);

    /* Misuse of the library. */
    CHECK_CODE(tl_balance(client, NULL, &no_balance, &error), TL_ERR_USAGE, error);
    CHECK_CODE(tl_balance(client, (const Tokenledger__V1__BalanceRequest *)&again, &no_balance, &error),
               TL_ERR_USAGE, error);
    Tokenledger__V1__Request empty = TOKENLEDGER__V1__REQUEST__INIT;
    CHECK_CODE(tl_call(client, &empty, &response, &error), TL_ERR_USAGE, error);
    CHECK_CODE(tl_await(client, 999999, &response, &error), TL_ERR_USAGE, error);
    /* A watch streams replies; this client refuses it rather than piling them up. */
    Tokenledger__V1__WatchRequest watch = TOKENLEDGER__V1__WATCH_REQUEST__INIT;
    watch.tenant = "acme";
    Tokenledger__V1__Request watch_request = TOKENLEDGER__V1__REQUEST__INIT;
    watch_request.call_case = TOKENLEDGER__V1__REQUEST__CALL_WATCH;
    watch_request.watch = &watch;
    CHECK_CODE(tl_call(client, &watch_request, &response, &error), TL_ERR_USAGE, error);
    CHECK(strstr(error.message, "webhook") != NULL);
    CHECK(strcmp(tl_code_name(TL_BUDGET_EXCEEDED), "budget_exceeded") == 0);
    CHECK(strcmp(tl_code_name(TL_WRONG_OWNER), "wrong_owner") == 0 && !tl_code_retryable(TL_WRONG_OWNER));
    CHECK(tl_code_retryable(TL_OVERLOADED) && !tl_code_retryable(TL_INSUFFICIENT_BALANCE));

    /* After all of that the connection still serves. */
    Tokenledger__V1__HealthRequest health = TOKENLEDGER__V1__HEALTH_REQUEST__INIT;
    Tokenledger__V1__HealthResult *healthy;
    CHECK_CODE(tl_health(client, &health, &healthy, &error), TL_OK, error);
    tl_result_free(healthy);
    tl_close(client);
}

/* 300 reserves in flight on one connection, replies collected in reverse order; then a blocking
 * call in the middle of pipelined ones. */
static void test_pipelining(void) {
    enum { DEPTH = 300 };
    tl_client *client = connect_admin(1);
    tl_error error;
    create_tenant(client, "pipes", 1000000);

    static Tokenledger__V1__ReserveRequest reserves[DEPTH];
    static Tokenledger__V1__Request requests[DEPTH];
    static char holds[DEPTH][16], request_ids[DEPTH][16];
    uint64_t ids[DEPTH];
    for (int i = 0; i < DEPTH; i++) {
        Tokenledger__V1__ReserveRequest reserve = TOKENLEDGER__V1__RESERVE_REQUEST__INIT;
        Tokenledger__V1__Request request = TOKENLEDGER__V1__REQUEST__INIT;
        snprintf(holds[i], sizeof holds[i], "p-%d", i);
        reserves[i] = reserve;
        snprintf(request_ids[i], sizeof request_ids[i], "pipe-%d", i);
        reserves[i].request_id = request_ids[i];
        reserves[i].tenant = "pipes";
        reserves[i].hold_id = holds[i];
        reserves[i].amount_case = TOKENLEDGER__V1__RESERVE_REQUEST__AMOUNT_TOKENS;
        reserves[i].tokens = (uint64_t)i + 1;
        requests[i] = request;
        requests[i].call_case = TOKENLEDGER__V1__REQUEST__CALL_RESERVE;
        requests[i].reserve = &reserves[i];
        CHECK_CODE(tl_submit(client, &requests[i], &ids[i], &error), TL_OK, error);
    }
    CHECK(tl_pending(client) == DEPTH);
    int matched = 0;
    for (int i = DEPTH - 1; i >= 0; i--) {
        Tokenledger__V1__Response *response;
        tl_code code = tl_await(client, ids[i], &response, &error);
        if (code == TL_OK && response->call_id == ids[i] && strcmp(response->reserve->hold->id, holds[i]) == 0 &&
            response->reserve->hold->amount == (uint64_t)i + 1) {
            matched++;
        } else if (code != TL_OK) {
            fprintf(stderr, "pipelined call %d: %s: %s\n", i, tl_code_name(code), error.message);
        }
        tl_response_free(response);
    }
    CHECK(matched == DEPTH);
    CHECK(tl_pending(client) == 0);
    Tokenledger__V1__Response *gone;
    CHECK_CODE(tl_await(client, ids[0], &gone, &error), TL_ERR_USAGE, error); /* awaited once only */

    /* Interleaved: pipelined calls, a blocking call, then the pipelined replies. */
    uint64_t first, second;
    reserves[0].hold_id = "q-1";
    reserves[0].request_id = "q-1";
    reserves[1].hold_id = "q-2";
    reserves[1].request_id = "q-2";
    CHECK_CODE(tl_submit(client, &requests[0], &first, &error), TL_OK, error);
    CHECK_CODE(tl_submit(client, &requests[1], &second, &error), TL_OK, error);
    CHECK_CODE(commit_tokens(client, "pipes", "p-10", 11, &error), TL_OK, error);
    Tokenledger__V1__Response *response;
    CHECK_CODE(tl_await(client, second, &response, &error), TL_OK, error);
    CHECK(response != NULL && strcmp(response->reserve->hold->id, "q-2") == 0);
    tl_response_free(response);
    CHECK_CODE(tl_await(client, first, &response, &error), TL_OK, error);
    CHECK(response != NULL && strcmp(response->reserve->hold->id, "q-1") == 0);
    tl_response_free(response);

    Tokenledger__V1__BalanceRequest balance_request = TOKENLEDGER__V1__BALANCE_REQUEST__INIT;
    balance_request.tenant = "pipes";
    Tokenledger__V1__BalanceResult *balance;
    CHECK_CODE(tl_balance(client, &balance_request, &balance, &error), TL_OK, error);
    /* 1 + 2 + ... + 300 held, then q-1 and q-2 (1 and 2 tokens); p-10 (11 tokens) committed in full. */
    if (balance != NULL) {
        CHECK(balance->spent == 11);
        CHECK(balance->reserved == DEPTH * (DEPTH + 1) / 2 - 11 + 1 + 2);
        CHECK(balance->open_holds == DEPTH - 1 + 2);
    }
    tl_result_free(balance);

    /* A reply never awaited is freed by tl_close (valgrind would report it otherwise). */
    uint64_t unawaited;
    reserves[2].hold_id = "q-3";
    reserves[2].request_id = "q-3";
    CHECK_CODE(tl_submit(client, &requests[2], &unawaited, &error), TL_OK, error);
    CHECK_CODE(tl_balance(client, &balance_request, &balance, &error), TL_OK, error);
    tl_result_free(balance);
    tl_close(client);
}

/* Deep pipelining: 10,000 calls submitted before any reply is awaited. The server stops reading
 * while its per-connection bound of calls is in flight and its replies wait for us; tl_submit reads
 * replies while it waits for the socket, so this neither deadlocks nor times out. */
static void test_deep_pipeline(void) {
    enum { DEPTH = 10000 };
    tl_client *client = connect_admin(1);
    tl_error error;
    create_tenant(client, "deep", 1000000);
    Tokenledger__V1__ReserveRequest reserve = TOKENLEDGER__V1__RESERVE_REQUEST__INIT;
    reserve.tenant = "deep";
    reserve.amount_case = TOKENLEDGER__V1__RESERVE_REQUEST__AMOUNT_TOKENS;
    reserve.tokens = 3;
    Tokenledger__V1__Request request = TOKENLEDGER__V1__REQUEST__INIT;
    request.call_case = TOKENLEDGER__V1__REQUEST__CALL_RESERVE;
    request.reserve = &reserve;
    uint64_t *ids = calloc(DEPTH, sizeof *ids);
    char hold[32], request_id[32];
    reserve.hold_id = hold;
    reserve.request_id = request_id;
    int submitted = 0, answered = 0;
    for (int i = 0; i < DEPTH; i++) {
        snprintf(hold, sizeof hold, "deep-%d", i);
        snprintf(request_id, sizeof request_id, "deep-%d", i);
        submitted += tl_submit(client, &request, &ids[i], &error) == TL_OK;
    }
    for (int i = 0; i < DEPTH; i++) {
        Tokenledger__V1__Response *response;
        if (tl_await(client, ids[i], &response, &error) == TL_OK) {
            snprintf(hold, sizeof hold, "deep-%d", i);
            answered += strcmp(response->reserve->hold->id, hold) == 0;
            tl_response_free(response);
        } else if (answered == i) {
            fprintf(stderr, "deep call %d: %s: %s\n", i, tl_code_name(error.code), error.message);
        }
    }
    CHECK(submitted == DEPTH);
    CHECK(answered == DEPTH);
    Tokenledger__V1__BalanceRequest balance_request = TOKENLEDGER__V1__BALANCE_REQUEST__INIT;
    balance_request.tenant = "deep";
    Tokenledger__V1__BalanceResult *balance;
    CHECK_CODE(tl_balance(client, &balance_request, &balance, &error), TL_OK, error);
    CHECK(balance != NULL && balance->reserved == 3 * DEPTH && balance->open_holds == DEPTH);
    tl_result_free(balance);
    free(ids);
    tl_close(client);
}

/* Requests faster than the server takes them: 400 estimates of 1,000 items each (about 8 MB)
 * submitted at once. tl_submit keeps at most a megabyte unsent and reads replies while it waits,
 * so the server's backpressure (it stops reading while its replies are not read) cannot deadlock. */
static void test_backpressure(void) {
    enum { CALLS = 400, ITEMS = 1000 };
    tl_client *client = connect_admin(1);
    tl_error error;
    create_tenant(client, "pressure", 1000000);
    Tokenledger__V1__PricedItem item = TOKENLEDGER__V1__PRICED_ITEM__INIT;
    item.feature = "transcription";
    item.quantity = 2;
    Tokenledger__V1__PricedItem **items = calloc(ITEMS, sizeof *items);
    for (int i = 0; i < ITEMS; i++) items[i] = &item;
    Tokenledger__V1__EstimateRequest estimate = TOKENLEDGER__V1__ESTIMATE_REQUEST__INIT;
    estimate.tenant = "pressure";
    estimate.n_items = ITEMS;
    estimate.items = items;
    Tokenledger__V1__Request request = TOKENLEDGER__V1__REQUEST__INIT;
    request.call_case = TOKENLEDGER__V1__REQUEST__CALL_ESTIMATE;
    request.estimate = &estimate;
    uint64_t ids[CALLS];
    int submitted = 0, answered = 0;
    for (int i = 0; i < CALLS; i++) submitted += tl_submit(client, &request, &ids[i], &error) == TL_OK;
    for (int i = 0; i < CALLS; i++) {
        Tokenledger__V1__Response *response;
        if (tl_await(client, ids[i], &response, &error) == TL_OK) {
            answered += response->estimate->total == 16 * ITEMS;
            tl_response_free(response);
        } else if (answered == i) {
            fprintf(stderr, "estimate %d: %s: %s\n", i, tl_code_name(error.code), error.message);
        }
    }
    CHECK(submitted == CALLS);
    CHECK(answered == CALLS);
    free(items);
    tl_close(client);
}

static int shell(const char *command) {
    int status = system(command);
    if (status != 0) fprintf(stderr, "command failed (%d): %s\n", status, command);
    return status;
}

/* Refusals: each failure is the right typed code, and nothing leaks on the way. */
static void test_refusals(void) {
    tl_error error;
    tl_client *client = NULL;
    tl_options options;
    char ca[400], ca_key[400], command[4096], stranger[400], stranger_key[400], foreign[400], foreign_key[400];
    snprintf(ca, sizeof ca, "%s/tls/ca.pem", server.data_dir);
    snprintf(ca_key, sizeof ca_key, "%s/tls/ca-key.pem", server.data_dir);
    snprintf(stranger, sizeof stranger, "%s/stranger.pem", server.directory);
    snprintf(stranger_key, sizeof stranger_key, "%s/stranger-key.pem", server.directory);
    snprintf(foreign, sizeof foreign, "%s/foreign.pem", server.directory);
    snprintf(foreign_key, sizeof foreign_key, "%s/foreign-key.pem", server.directory);

    /* The server's certificate is for localhost and 127.0.0.1, not for another name. */
    tl_options_init(&options);
    options.port = server.port;
    options.data_dir = server.data_dir;
    options.server_name = "ledger.example.com";
    CHECK_CODE(tl_connect(&options, &client, &error), TL_ERR_TLS, error);
    CHECK(client == NULL && strstr(error.message, "certificate") != NULL);
    options.server_name = "localhost";
    CHECK_CODE(tl_connect(&options, &client, &error), TL_OK, error);
    tl_close(client);

    /* Several addresses: a node that refuses connections is passed over for the next; a list that
     * does not parse is refused before anything connects. */
    char servers[64];
    snprintf(servers, sizeof servers, "127.0.0.1:%u", (unsigned)server.port);
    tl_options_init(&options);
    options.port = 1; /* nothing listens on port 1 */
    options.data_dir = server.data_dir;
    options.servers = servers;
    CHECK_CODE(tl_connect(&options, &client, &error), TL_OK, error);
    if (client != NULL) {
        Tokenledger__V1__HealthRequest moved = TOKENLEDGER__V1__HEALTH_REQUEST__INIT;
        Tokenledger__V1__HealthResult *answered;
        CHECK_CODE(tl_health(client, &moved, &answered, &error), TL_OK, error);
        tl_result_free(answered);
    }
    tl_close(client);
    client = NULL;
    options.servers = "127.0.0.1:7443,nonsense";
    CHECK_CODE(tl_connect(&options, &client, &error), TL_ERR_USAGE, error);
    CHECK(client == NULL && strstr(error.message, "nonsense") != NULL);

    /* A certificate from the server's own CA for a name the access file does not know: the TLS
     * handshake passes, the first call is refused as unauthenticated. */
    snprintf(command, sizeof command,
             "openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=stranger "
             "-keyout %s -out %s.csr 2>/dev/null && openssl x509 -req -in %s.csr -CA %s -CAkey %s "
             "-CAcreateserial -CAserial %s.srl -days 1 -out %s 2>/dev/null",
             stranger_key, stranger, stranger, ca, ca_key, stranger, stranger);
    if (shell(command) == 0) {
        tl_options_init(&options);
        options.port = server.port;
        options.ca_file = ca;
        options.cert_file = stranger;
        options.key_file = stranger_key;
        options.attempts = 1;
        CHECK_CODE(tl_connect(&options, &client, &error), TL_OK, error);
        Tokenledger__V1__HealthRequest health = TOKENLEDGER__V1__HEALTH_REQUEST__INIT;
        Tokenledger__V1__HealthResult *result;
        CHECK_CODE(tl_health(client, &health, &result, &error), TL_UNAUTHENTICATED, error);
        tl_close(client);
    } else {
        CHECK(!"openssl could not issue the stranger certificate");
    }

    /* A client certificate from a CA the server does not trust: refused during the handshake,
     * which under TLS 1.3 the client learns on its first read. */
    snprintf(command, sizeof command,
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=admin "
             "-keyout %s -out %s -days 1 2>/dev/null",
             foreign_key, foreign);
    if (shell(command) == 0) {
        tl_options_init(&options);
        options.port = server.port;
        options.ca_file = ca;
        options.cert_file = foreign;
        options.key_file = foreign_key;
        options.attempts = 1;
        tl_code code = tl_connect(&options, &client, &error);
        if (code == TL_OK) {
            Tokenledger__V1__HealthRequest health = TOKENLEDGER__V1__HEALTH_REQUEST__INIT;
            Tokenledger__V1__HealthResult *result;
            code = tl_health(client, &health, &result, &error);
            tl_close(client);
        }
        CHECK_CODE(code, TL_ERR_TLS, error);
        /* The server's certificate checked against a CA that did not sign it. */
        options.ca_file = foreign;
        options.cert_file = NULL;
        options.key_file = NULL;
        options.data_dir = server.data_dir;
        CHECK_CODE(tl_connect(&options, &client, &error), TL_ERR_TLS, error);
    } else {
        CHECK(!"openssl could not make the foreign certificate");
    }

    /* Files that are not there. */
    tl_options_init(&options);
    options.port = server.port;
    options.data_dir = "/nonexistent";
    CHECK_CODE(tl_connect(&options, &client, &error), TL_ERR_FILE, error);
    CHECK(strstr(error.message, "/nonexistent/tls/ca.pem") != NULL);

    /* Nobody listening: a listening socket closed again leaves a port that refuses. */
    int probe = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t length = sizeof address;
    bind(probe, (struct sockaddr *)&address, sizeof address);
    listen(probe, 4);
    getsockname(probe, (struct sockaddr *)&address, &length);
    uint16_t silent_port = ntohs(address.sin_port);

    /* A server that accepts TCP (the kernel does, from the backlog) but never speaks TLS. */
    tl_options_init(&options);
    options.port = silent_port;
    options.data_dir = server.data_dir;
    options.connect_timeout_ms = 300;
    CHECK_CODE(tl_connect(&options, &client, &error), TL_ERR_TIMEOUT, error);
    close(probe);
    CHECK_CODE(tl_connect(&options, &client, &error), TL_ERR_CONNECT, error);
    options.host = "no-such-host.invalid";
    CHECK_CODE(tl_connect(&options, &client, &error), TL_ERR_CONNECT, error);
    CHECK_CODE(tl_connect(&options, NULL, &error), TL_ERR_USAGE, error);
}

/* The server stops and comes back on the same port: calls in between fail as transport errors
 * after the retries, and the next call reconnects by itself and sees the state that was there. */
static void test_restart(void) {
    tl_client *client = connect_admin(2);
    tl_error error;
    create_tenant(client, "durable", 700);
    CHECK_CODE(reserve_tokens(client, "durable", "d-1", NULL, 200, "restart-reserve", &error), TL_OK, error);
    uint16_t port = server.port;
    CHECK(ledgerd_stop(&server) == 0);

    Tokenledger__V1__HealthRequest health = TOKENLEDGER__V1__HEALTH_REQUEST__INIT;
    Tokenledger__V1__HealthResult *result;
    tl_code code = tl_health(client, &health, &result, &error);
    CHECK(code == TL_ERR_CLOSED || code == TL_ERR_CONNECT);

    int started = -1;
    for (int attempt = 0; attempt < 20 && started != 0; attempt++) {
        started = ledgerd_start(&server, port);
        if (started != 0) usleep(250 * 1000);
    }
    CHECK(started == 0);
    if (started != 0) {
        tl_close(client);
        return;
    }
    /* The retried reserve is answered from the log, not applied again. */
    CHECK_CODE(reserve_tokens(client, "durable", "d-1", NULL, 200, "restart-reserve", &error), TL_OK, error);
    Tokenledger__V1__BalanceRequest balance_request = TOKENLEDGER__V1__BALANCE_REQUEST__INIT;
    balance_request.tenant = "durable";
    Tokenledger__V1__BalanceResult *balance;
    CHECK_CODE(tl_balance(client, &balance_request, &balance, &error), TL_OK, error);
    CHECK(balance != NULL && balance->reserved == 200 && balance->available == 500);
    tl_result_free(balance);
    tl_close(client);
}

/* The README's example program, run as it is against a ledgerd of its own. */
static void test_example(void) {
    ledgerd own;
    if (ledgerd_start(&own, 0) != 0) {
        CHECK(!"a second ledgerd did not start");
        return;
    }
    ledgerd saved = server;
    server = own;
    tl_client *client = connect_admin(1);
    create_tenant(client, "acme", 1000);
    tl_close(client);
    server = saved;
    char command[512], output[512] = "";
    snprintf(command, sizeof command, "./build/reserve_commit 127.0.0.1 %u %s", (unsigned)own.port, own.data_dir);
    FILE *program = popen(command, "r");
    size_t length = program != NULL ? fread(output, 1, sizeof output - 1, program) : 0;
    output[length] = '\0';
    int status = program != NULL ? pclose(program) : -1;
    CHECK(status == 0);
    CHECK(strstr(output, "held 296 tokens on hold interview-1\ncommitted 280, released 16\navailable 720, spent 280\n") != NULL);
    CHECK(ledgerd_stop(&own) == 0);
    ledgerd_remove(&own);
}

int main(void) {
    if (ledgerd_start(&server, 0) != 0) return 2;
    struct {
        const char *name;
        void (*run)(void);
    } tests[] = {
        {"every call", test_every_call},   {"typed errors", test_typed_errors},
        {"pipelining", test_pipelining},   {"deep pipeline", test_deep_pipeline},
        {"backpressure", test_backpressure}, {"refusals", test_refusals},
        {"restart", test_restart},         {"example", test_example},
        {"quotas", test_quotas_and_scopes},
    };
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
        int before = failures;
        tests[i].run();
        printf("%-14s %s\n", tests[i].name, failures == before ? "ok" : "FAILED");
        fflush(stdout);
    }
    int stopped = server.pid > 0 ? ledgerd_stop(&server) : 0;
    CHECK(stopped == 0);
    ledgerd_remove(&server);
    printf("%d checks, %d failed\n", checks, failures);
    return failures == 0 ? 0 : 1;
}
