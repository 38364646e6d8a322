/* A Modbus TCP server built on libmodbus (Debian libmodbus-dev), an
 * implementation independent of Weft's, for the driver's cross-check test.
 * It listens on 127.0.0.1 at an ephemeral port, prints the port, and serves
 * these registers until killed:
 *   holding 0..99    = 1000 + address
 *   holding 10..17   = 1234.5f in orders ABCD, CDAB, BADC, DCBA (libmodbus setters)
 *   input   0..99    = 2000 + address
 *   coils   0..15    = bits of 0xA5C3
 */
#include <arpa/inet.h>
#include <modbus.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

int main(void) {
    modbus_t *ctx = modbus_new_tcp("127.0.0.1", 0);
    modbus_mapping_t *map = modbus_mapping_new(16, 16, 100, 100);
    if (ctx == NULL || map == NULL) return 1;
    for (int i = 0; i < 100; i++) {
        map->tab_registers[i] = 1000 + i;
        map->tab_input_registers[i] = 2000 + i;
    }
    modbus_set_float_abcd(1234.5f, map->tab_registers + 10);
    modbus_set_float_cdab(1234.5f, map->tab_registers + 12);
    modbus_set_float_badc(1234.5f, map->tab_registers + 14);
    modbus_set_float_dcba(1234.5f, map->tab_registers + 16);
    for (int i = 0; i < 16; i++) map->tab_bits[i] = (0xA5C3 >> i) & 1;

    int ls = modbus_tcp_listen(ctx, 4);
    if (ls < 0) return 1;
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    getsockname(ls, (struct sockaddr *)&sa, &len);
    printf("%d\n", ntohs(sa.sin_port));
    fflush(stdout);
    for (;;) {
        modbus_tcp_accept(ctx, &ls);
        for (;;) {
            uint8_t q[MODBUS_TCP_MAX_ADU_LENGTH];
            int n = modbus_receive(ctx, q);
            if (n == -1) break;
            if (n > 0) modbus_reply(ctx, q, n, map);
        }
        close(modbus_get_socket(ctx));
    }
}
