/*
 * librdkafka's mock Kafka cluster as a process, for tests: no real broker can run on the CI machine.
 *
 *   kafka-mock <broker-count> <topic>:<partitions> ...
 *
 * Prints "bootstrap <host:port,...>" once the cluster listens, then executes one fault-injection command per
 * stdin line, answering "ok" or "error <reason>":
 *   down <broker-id> | up <broker-id> | rtt <broker-id> <ms> | errors <api-key> <error-code> <count>
 * It exits when stdin closes, so it never outlives the test that started it.
 */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void reply(rd_kafka_resp_err_t err) {
  if (err) printf("error %s\n", rd_kafka_err2str(err));
  else printf("ok\n");
  fflush(stdout);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s <broker-count> <topic>:<partitions> ...\n", argv[0]);
    return 2;
  }
  char errstr[512];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof errstr);
  /* The mock cluster needs a client handle for its bookkeeping; this one never connects. */
  if (rd_kafka_conf_set(conf, "bootstrap.servers", "", errstr, sizeof errstr) != RD_KAFKA_CONF_OK) {
    fprintf(stderr, "%s\n", errstr);
    return 1;
  }
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
  if (!rk) {
    fprintf(stderr, "%s\n", errstr);
    return 1;
  }
  rd_kafka_mock_cluster_t *cluster = rd_kafka_mock_cluster_new(rk, atoi(argv[1]));
  if (!cluster) {
    fprintf(stderr, "cannot create the mock cluster\n");
    return 1;
  }
  for (int i = 2; i < argc; i++) {
    char *sep = strrchr(argv[i], ':');
    if (!sep) {
      fprintf(stderr, "bad topic spec %s (want name:partitions)\n", argv[i]);
      return 2;
    }
    *sep = '\0';
    rd_kafka_resp_err_t err = rd_kafka_mock_topic_create(cluster, argv[i], atoi(sep + 1), 1);
    if (err) {
      fprintf(stderr, "cannot create topic %s: %s\n", argv[i], rd_kafka_err2str(err));
      return 1;
    }
  }
  printf("bootstrap %s\n", rd_kafka_mock_cluster_bootstraps(cluster));
  fflush(stdout);

  char line[256], cmd[32];
  int a, b, c;
  while (fgets(line, sizeof line, stdin)) {
    int n = sscanf(line, "%31s %d %d %d", cmd, &a, &b, &c);
    if (n >= 2 && !strcmp(cmd, "down")) reply(rd_kafka_mock_broker_set_down(cluster, a));
    else if (n >= 2 && !strcmp(cmd, "up")) reply(rd_kafka_mock_broker_set_up(cluster, a));
    else if (n >= 3 && !strcmp(cmd, "rtt")) reply(rd_kafka_mock_broker_set_rtt(cluster, a, b));
    else if (n >= 4 && !strcmp(cmd, "errors")) {
      rd_kafka_resp_err_t *errs = malloc(sizeof *errs * (size_t)c);
      for (int i = 0; i < c; i++) errs[i] = (rd_kafka_resp_err_t)b;
      rd_kafka_mock_push_request_errors_array(cluster, (int16_t)a, (size_t)c, errs);
      free(errs);
      reply(RD_KAFKA_RESP_ERR_NO_ERROR);
    } else {
      printf("error unknown command\n");
      fflush(stdout);
    }
  }
  rd_kafka_mock_cluster_destroy(cluster);
  rd_kafka_destroy(rk);
  return 0;
}
