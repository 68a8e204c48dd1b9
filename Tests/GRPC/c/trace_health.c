/*
 * One health call through the C client with a trace parent (tl_set_trace_parent), for
 * Tests/GRPC/python/test_traces.py, which checks that ledgerd's exported span has that parent.
 *
 *   trace_health PORT DATA_DIR TRACEPARENT
 */
#include <stdio.h>
#include <stdlib.h>

#include "tokenledger.h"

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: trace_health PORT DATA_DIR TRACEPARENT\n");
        return 64;
    }
    tl_options options;
    tl_options_init(&options);
    options.port = (uint16_t)atoi(argv[1]);
    options.data_dir = argv[2];
    tl_client *client;
    tl_error error;
    if (tl_connect(&options, &client, &error) != TL_OK || tl_set_trace_parent(client, argv[3], &error) != TL_OK) {
        fprintf(stderr, "%s: %s\n", tl_code_name(error.code), error.message);
        return 1;
    }
    Tokenledger__V1__HealthRequest request = TOKENLEDGER__V1__HEALTH_REQUEST__INIT;
    Tokenledger__V1__HealthResult *health;
    tl_code code = tl_health(client, &request, &health, &error);
    if (code != TL_OK) {
        fprintf(stderr, "health: %s: %s\n", tl_code_name(code), error.message);
        tl_close(client);
        return 1;
    }
    tl_result_free(health);
    tl_close(client);
    return 0;
}
