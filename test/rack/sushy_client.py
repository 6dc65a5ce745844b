"""Drives a Converge rack BMC with sushy (OpenStack's Redfish client, Debian python3-sushy).

Usage: sushy_client.py URL USER PASSWORD CA_FILE MEDIA_URL
Prints one JSON object with what it saw, for test/rack/sushy.test.ts to check.
"""
import json
import sys
import time

import sushy

url, user, password, ca, media = sys.argv[1:6]
conn = sushy.Sushy(url, username=user, password=password, verify=ca)
out = {}
system = conn.get_system_collection().get_members()[0]
out['system'] = {'id': system.identity, 'serial': system.serial_number, 'power': system.power_state.value}
out['processors'] = {'count': system.processors.summary.count, 'arch': system.processors.summary.architecture.value}
out['memory_gib'] = system.memory_summary.size_gib
out['drives'] = sorted(system.storage.drives_sizes_bytes)
out['drive_media'] = sorted({d.media_type for s in system.storage.get_members() for d in s.drives})
out['nics'] = sorted(system.ethernet_interfaces.summary.keys())

system.set_system_boot_options(sushy.BOOT_SOURCE_TARGET_CD, enabled=sushy.BOOT_SOURCE_ENABLED_ONCE)
system.refresh()
out['boot'] = [system.boot.target.value, system.boot.enabled.value]

manager = conn.get_manager_collection().get_members()[0]
vmedia = manager.virtual_media.get_members()[0]
vmedia.insert_media(media, inserted=True, write_protected=True)
vmedia.refresh()
out['media'] = [vmedia.image, vmedia.inserted]

system.reset_system(sushy.RESET_ON)
for _ in range(100):
    system.refresh()
    if system.power_state == sushy.PowerState.ON:
        break
    time.sleep(0.05)
out['power_after_on'] = system.power_state.value
system.reset_system(sushy.RESET_FORCE_OFF)
system.refresh()
out['power_after_off'] = system.power_state.value
vmedia.eject_media()
vmedia.refresh()
out['media_after_eject'] = [vmedia.image, vmedia.inserted]
out['chassis'] = conn.get_chassis_collection().get_members()[0].chassis_type.value
out['update_service'] = conn.get_update_service().identity
out['session_auth'] = type(conn._auth).__name__
print(json.dumps(out))
