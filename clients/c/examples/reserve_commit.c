/*
 * Reserve before the work, commit what was used, release if the work failed.
 *
 *   ./build/reserve_commit [HOST PORT DATA_DIR]     (defaults: 127.0.0.1 7443 ./ledger-data)
 *
 * Against a ledgerd started with `swift run -c release ledgerd` from the repository root, after
 * `tokenctl tenant create acme` and `tokenctl grant acme 1000 --kind promo`.
 */
#include <stdio.h>
#include <stdlib.h>

#include "tokenledger.h"

int main(int argc, char **argv) {
    tl_options options;
    tl_options_init(&options);
    if (argc == 4) {
        options.host = argv[1];
        options.port = (uint16_t)atoi(argv[2]);
        options.data_dir = argv[3];
    }
    tl_client *ledger;
    tl_error error;
    if (tl_connect(&options, &ledger, &error) != TL_OK) {
        fprintf(stderr, "connect: %s: %s\n", tl_code_name(error.code), error.message);
        return 1;
    }

    /* 37 minutes of transcription, priced by the server's catalog (8 tokens a minute: 296). */
    char request_id[37];
    tl_new_request_id(request_id); /* keep it to retry the reserve after a crash of this program */
    Tokenledger__V1__PricedItem minutes = TOKENLEDGER__V1__PRICED_ITEM__INIT;
    minutes.feature = "transcription";
    minutes.quantity = 37;
    Tokenledger__V1__PricedItem *list[] = {&minutes};
    Tokenledger__V1__PricedItems items = TOKENLEDGER__V1__PRICED_ITEMS__INIT;
    items.n_items = 1;
    items.items = list;
    Tokenledger__V1__ReserveRequest reserve = TOKENLEDGER__V1__RESERVE_REQUEST__INIT;
    reserve.request_id = request_id;
    reserve.tenant = "acme";
    reserve.hold_id = "interview-1";
    reserve.amount_case = TOKENLEDGER__V1__RESERVE_REQUEST__AMOUNT_ITEMS;
    reserve.items = &items;
    Tokenledger__V1__ReserveResult *reserved;
    if (tl_reserve(ledger, &reserve, &reserved, &error) != TL_OK) {
        if (error.details == TL_DETAILS_BALANCE) {
            fprintf(stderr, "not enough tokens: %llu available, %llu needed\n",
                    (unsigned long long)error.available, (unsigned long long)error.requested);
        } else {
            fprintf(stderr, "reserve: %s: %s\n", tl_code_name(error.code), error.message);
        }
        tl_close(ledger);
        return 1;
    }
    printf("held %llu tokens on hold %s\n", (unsigned long long)reserved->hold->held, reserved->hold->id);
    tl_result_free(reserved);

    int work_succeeded = 1; /* ... the transcription runs here ... */

    if (work_succeeded) {
        Tokenledger__V1__CommitRequest commit = TOKENLEDGER__V1__COMMIT_REQUEST__INIT;
        commit.tenant = "acme";
        commit.hold_id = "interview-1";
        commit.amount = 280; /* 35 minutes were used; the rest of the hold goes back */
        Tokenledger__V1__CommitResult *committed;
        if (tl_commit(ledger, &commit, &committed, &error) != TL_OK) {
            fprintf(stderr, "commit: %s: %s\n", tl_code_name(error.code), error.message);
            tl_close(ledger);
            return 1;
        }
        printf("committed %llu, released %llu\n", (unsigned long long)committed->captured,
               (unsigned long long)committed->released);
        tl_result_free(committed);
    } else {
        Tokenledger__V1__ReleaseRequest release = TOKENLEDGER__V1__RELEASE_REQUEST__INIT;
        release.tenant = "acme";
        release.hold_id = "interview-1";
        Tokenledger__V1__ReleaseResult *released;
        if (tl_release(ledger, &release, &released, &error) == TL_OK) tl_result_free(released);
    }

    Tokenledger__V1__BalanceRequest balance_request = TOKENLEDGER__V1__BALANCE_REQUEST__INIT;
    balance_request.tenant = "acme";
    Tokenledger__V1__BalanceResult *balance;
    if (tl_balance(ledger, &balance_request, &balance, &error) == TL_OK) {
        printf("available %llu, spent %llu\n", (unsigned long long)balance->available,
               (unsigned long long)balance->spent);
        tl_result_free(balance);
    }
    tl_close(ledger);
    return 0;
}
