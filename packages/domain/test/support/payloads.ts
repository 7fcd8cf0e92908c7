/** Bodies in the wire format (contract §1), as clients send them. */

/** The naive local times the Home Assistant client sends (no zone: read in the device's zone). */
const HA_TIMES = ["2026-11-20T10:15:00", "2026-11-20T10:45:30", "2026-11-20T10:20:00"] as const

/**
 * One equipment as the Home Assistant client sends it: numeric strings, a temperature sensor read twice, a door
 * sensor, a field of a newer client; its three readings at `times`.
 */
export const haPayload = (equipUuid = "freezer-1", times: readonly [string, string, string] = HA_TIMES) => [
  {
    equip_uuid: equipUuid,
    equip_nome: "Freezer 1",
    equip_local: "Kitchen",
    equip_status: "ATIVO",
    equip_intervalo_coleta: "30",
    equip_sirene_ativa: "SIM",
    equip_sirete_tempo: 90,
    sensor: [
      {
        sensor_uuid: `${equipUuid}-temp`,
        sensor_nome: "Temperature",
        sensor_tipo: "temperature",
        sensor_unidade: "°C",
        sensor_fabricante: "Acme",
        valor: null,
        sensor_telemetria: "-18.5",
        sensor_datahora_coleta: times[0],
        sensor_bateria_pct: 87,
        sensor_sinal_rssi: -61
      },
      {
        sensor_uuid: `${equipUuid}-temp`,
        sensor_tipo: "temperature",
        valor: -17.25,
        sensor_datahora_coleta: times[1]
      },
      {
        sensor_uuid: `${equipUuid}-door`,
        sensor_nome: "Door",
        tipo: "door",
        sensor_telemetria: "open",
        sensor_datahora_coleta: times[2],
        extra_field_from_a_newer_client: true
      }
    ]
  }
]

/** The row `equipments` holds for the equipment of `haPayload` (its Portuguese values normalized). */
export const haEquipmentRow = {
  name: "Freezer 1",
  location: "Kitchen",
  status: "active",
  collection_interval: 30,
  siren_active: true,
  siren_time: 90
}

/** `items` equipments with `readingsPerItem` temperature readings each, one a minute from `start`. */
export const bulkPayload = (items: number, readingsPerItem: number, start = Date.UTC(2026, 10, 1), prefix = "eq") =>
  Array.from({ length: items }, (_, i) => ({
    equip_uuid: `${prefix}-${i}`,
    equip_nome: `Equipment ${i}`,
    sensor: Array.from({ length: readingsPerItem }, (_, j) => ({
      sensor_uuid: `${prefix}-${i}-s${j % 4}`,
      sensor_tipo: "temperature",
      valor: (i * 7 + j) % 50 - 20,
      sensor_datahora_coleta: new Date(start + j * 60_000).toISOString()
    }))
  }))
