/** Payloads as the Home Assistant client sends them: naive local times, numeric strings, a door sensor. */
export const haPayload = (equipUuid = "freezer-1") => [
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
        valor: null,
        sensor_telemetria: "-18.5",
        sensor_datahora_coleta: "2026-11-20T10:15:00",
        sensor_bateria_pct: 87,
        sensor_sinal_rssi: -61
      },
      {
        sensor_uuid: `${equipUuid}-temp`,
        sensor_tipo: "temperature",
        valor: -17.25,
        sensor_datahora_coleta: "2026-11-20T10:45:30"
      },
      {
        sensor_uuid: `${equipUuid}-door`,
        sensor_nome: "Door",
        tipo: "door",
        sensor_telemetria: "open",
        sensor_datahora_coleta: "2026-11-20T10:20:00",
        extra_field_from_a_newer_client: true
      }
    ]
  }
]

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
