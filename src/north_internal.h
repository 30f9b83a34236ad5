/* SPDX-License-Identifier: MIT */
/* Declarations shared by the northbound files. */
#ifndef COAP2MQTT_NORTH_INTERNAL_H
#define COAP2MQTT_NORTH_INTERNAL_H

/* TCP_NODELAY on the broker connection (Paho has no option for it). @return sockets set. */
int north_set_nodelay(void);
/* QoS 1/2 PUBLISH writes that failed on a broken link and were reported done to Paho, so
 * that its session keeps them intact (north_deadlink.c). */
unsigned long north_lost_writes(void);

#endif
