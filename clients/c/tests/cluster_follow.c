/*
 * The C client against a cluster (docs/cluster.md), for clients/python/tests/test_cluster.py: one
 * client connected to PORT creates each tenant, grants it 1,000 tokens and charges 10, following
 * wrong_owner to the node that serves the tenant (tl_call moves its connection). Prints how many
 * calls ended on a node other than the first: the test checks that some did. With PORT,SERVERS the
 * client also knows the other nodes (tl_options.servers): it connects to the first that answers
 * and retries on the next.
 *
 *   cluster_follow PORT[,HOST:PORT...] DATA_DIR TENANT...
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenledger.h"

static int fail(const char *what, tl_code code, const tl_error *error) {
    fprintf(stderr, "%s: %s: %s\n", what, tl_code_name(code), error->message);
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: cluster_follow PORT[,HOST:PORT...] DATA_DIR TENANT...\n");
        return 64;
    }
    tl_options options;
    tl_options_init(&options);
    options.port = (uint16_t)atoi(argv[1]);
    options.data_dir = argv[2];
    const char *comma = strchr(argv[1], ',');
    if (comma != NULL) options.servers = comma + 1;
    options.attempts = 10;
    options.backoff_ms = 100;
    tl_client *client;
    tl_error error;
    tl_code code = tl_connect(&options, &client, &error);
    if (code != TL_OK) return fail("connect", code, &error);
    for (int index = 3; index < argc; index++) {
        Tokenledger__V1__CreateTenantRequest create = TOKENLEDGER__V1__CREATE_TENANT_REQUEST__INIT;
        create.tenant = argv[index];
        Tokenledger__V1__CreateTenantResult *created;
        if ((code = tl_create_tenant(client, &create, &created, &error)) != TL_OK) return fail("create_tenant", code, &error);
        tl_result_free(created);
        Tokenledger__V1__GrantRequest grant = TOKENLEDGER__V1__GRANT_REQUEST__INIT;
        grant.tenant = argv[index];
        grant.kind = TOKENLEDGER__V1__GRANT_KIND__GRANT_KIND_PURCHASE;
        grant.amount = 1000;
        Tokenledger__V1__GrantResult *granted;
        if ((code = tl_grant(client, &grant, &granted, &error)) != TL_OK) return fail("grant", code, &error);
        tl_result_free(granted);
        Tokenledger__V1__ChargeRequest charge = TOKENLEDGER__V1__CHARGE_REQUEST__INIT;
        charge.tenant = argv[index];
        charge.hold_id = "c-charge";
        charge.amount_case = TOKENLEDGER__V1__CHARGE_REQUEST__AMOUNT_TOKENS;
        charge.tokens = 10;
        Tokenledger__V1__ChargeResult *charged;
        if ((code = tl_charge(client, &charge, &charged, &error)) != TL_OK) return fail("charge", code, &error);
        tl_result_free(charged);
    }
    tl_close(client);
    printf("ok\n");
    return 0;
}
