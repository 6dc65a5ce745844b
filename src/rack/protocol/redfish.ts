/**
 * @module
 * Redfish wire facts shared by the BMC service, its clients and tests: schema versions, the Base
 * message registry entries the service uses, and the shape of an error body.
 * @see DSP0266 (Redfish Specification) "Error responses"; DSP8011 Base message registry.
 */

export const REDFISH_VERSION = '1.17.0';
export const BASE_REGISTRY = 'Base.1.24.0';

/** Schema version of each resource type the service serves. */
export const T = {
  ServiceRoot: '#ServiceRoot.v1_15_0.ServiceRoot',
  ComputerSystemCollection: '#ComputerSystemCollection.ComputerSystemCollection',
  ComputerSystem: '#ComputerSystem.v1_20_0.ComputerSystem',
  ActionInfo: '#ActionInfo.v1_3_0.ActionInfo',
  ProcessorCollection: '#ProcessorCollection.ProcessorCollection',
  Processor: '#Processor.v1_18_0.Processor',
  MemoryCollection: '#MemoryCollection.MemoryCollection',
  Memory: '#Memory.v1_17_0.Memory',
  StorageCollection: '#StorageCollection.StorageCollection',
  Storage: '#Storage.v1_15_0.Storage',
  StorageControllerCollection: '#StorageControllerCollection.StorageControllerCollection',
  StorageController: '#StorageController.v1_7_0.StorageController',
  Drive: '#Drive.v1_17_0.Drive',
  EthernetInterfaceCollection: '#EthernetInterfaceCollection.EthernetInterfaceCollection',
  EthernetInterface: '#EthernetInterface.v1_10_0.EthernetInterface',
  PCIeDeviceCollection: '#PCIeDeviceCollection.PCIeDeviceCollection',
  PCIeDevice: '#PCIeDevice.v1_11_0.PCIeDevice',
  PCIeFunctionCollection: '#PCIeFunctionCollection.PCIeFunctionCollection',
  PCIeFunction: '#PCIeFunction.v1_5_0.PCIeFunction',
  Bios: '#Bios.v1_2_1.Bios',
  ChassisCollection: '#ChassisCollection.ChassisCollection',
  Chassis: '#Chassis.v1_23_0.Chassis',
  Power: '#Power.v1_7_1.Power',
  Thermal: '#Thermal.v1_7_1.Thermal',
  ManagerCollection: '#ManagerCollection.ManagerCollection',
  Manager: '#Manager.v1_17_0.Manager',
  VirtualMediaCollection: '#VirtualMediaCollection.VirtualMediaCollection',
  VirtualMedia: '#VirtualMedia.v1_6_2.VirtualMedia',
  LogServiceCollection: '#LogServiceCollection.LogServiceCollection',
  LogService: '#LogService.v1_4_0.LogService',
  LogEntryCollection: '#LogEntryCollection.LogEntryCollection',
  LogEntry: '#LogEntry.v1_15_0.LogEntry',
  SessionService: '#SessionService.v1_1_9.SessionService',
  SessionCollection: '#SessionCollection.SessionCollection',
  Session: '#Session.v1_6_0.Session',
  AccountService: '#AccountService.v1_13_0.AccountService',
  ManagerAccountCollection: '#ManagerAccountCollection.ManagerAccountCollection',
  ManagerAccount: '#ManagerAccount.v1_10_0.ManagerAccount',
  RoleCollection: '#RoleCollection.RoleCollection',
  Role: '#Role.v1_3_2.Role',
  UpdateService: '#UpdateService.v1_12_0.UpdateService',
  SoftwareInventoryCollection: '#SoftwareInventoryCollection.SoftwareInventoryCollection',
  SoftwareInventory: '#SoftwareInventory.v1_10_0.SoftwareInventory',
  CertificateCollection: '#CertificateCollection.CertificateCollection',
  Certificate: '#Certificate.v1_8_0.Certificate',
  TaskService: '#TaskService.v1_2_1.TaskService',
  TaskCollection: '#TaskCollection.TaskCollection',
  Task: '#Task.v1_7_3.Task',
  MessageRegistryFileCollection: '#MessageRegistryFileCollection.MessageRegistryFileCollection',
  MessageRegistryFile: '#MessageRegistryFile.v1_1_3.MessageRegistryFile',
  Message: '#Message.v1_1_2.Message',
} as const;

type Severity = 'OK' | 'Warning' | 'Critical';

interface MessageDef {
  message: string;
  severity: Severity;
  resolution: string;
}

/** The Base registry messages this service emits. %1, %2 ... are MessageArgs. */
export const BASE_MESSAGES = {
  Success: { message: 'The request completed successfully.', severity: 'OK', resolution: 'None.' },
  GeneralError: { message: 'A general error has occurred.  See Resolution for information on how to resolve the error, or @Message.ExtendedInfo if Resolution is not provided.', severity: 'Critical', resolution: 'None.' },
  Created: { message: 'The resource was created successfully.', severity: 'OK', resolution: 'None.' },
  ResourceNotFound: { message: "The requested resource of type '%1' named '%2' was not found.", severity: 'Critical', resolution: 'Provide a valid resource identifier and resubmit the request.' },
  ResourceMissingAtURI: { message: "The resource at the URI '%1' was not found.", severity: 'Critical', resolution: 'Place a valid resource at the URI or correct the URI and resubmit the request.' },
  NoValidSession: { message: 'There is no valid session established with the implementation.', severity: 'Critical', resolution: 'Establish a session before attempting any operations.' },
  InsufficientPrivilege: { message: 'There are insufficient privileges for the account or credentials associated with the current session to perform the requested operation.', severity: 'Critical', resolution: 'Either abandon the operation or change the associated access rights and resubmit the request if the operation failed.' },
  OperationNotAllowed: { message: 'The HTTP method is not allowed on this resource.', severity: 'Critical', resolution: 'None.' },
  MalformedJSON: { message: 'The request body submitted was malformed JSON and could not be parsed by the receiving service.', severity: 'Critical', resolution: 'Ensure that the request body is valid JSON and resubmit the request.' },
  PropertyValueNotInList: { message: "The value '%1' for the property '%2' is not in the list of acceptable values.", severity: 'Warning', resolution: 'Choose a value from the enumeration list that the implementation can support and resubmit the request if the operation failed.' },
  PropertyValueTypeError: { message: "The value '%1' for the property '%2' is not a type that the property can accept.", severity: 'Warning', resolution: 'Correct the value for the property in the request body and resubmit the request if the operation failed.' },
  PropertyValueFormatError: { message: "The value '%1' for the property '%2' is not a format that the property can accept.", severity: 'Warning', resolution: 'Correct the value for the property in the request body and resubmit the request if the operation failed.' },
  PropertyNotWritable: { message: "The property '%1' is a read-only property and cannot be assigned a value.", severity: 'Warning', resolution: 'Remove the property from the request body and resubmit the request if the operation failed.' },
  PropertyUnknown: { message: "The property '%1' is not in the list of valid properties for the resource.", severity: 'Warning', resolution: 'Remove the unknown property from the request body and resubmit the request if the operation failed.' },
  PropertyMissing: { message: "The property '%1' is a required property and must be included in the request.", severity: 'Warning', resolution: 'Ensure that the property is in the request body and has a valid value and resubmit the request if the operation failed.' },
  ActionNotSupported: { message: "The action '%1' is not supported by the resource.", severity: 'Critical', resolution: 'Check the Actions property in the resource for the supported actions.' },
  ActionParameterMissing: { message: "The action '%1' requires the parameter '%2' to be present in the request body.", severity: 'Critical', resolution: 'Supply the action with the required parameter in the request body when the request is resubmitted.' },
  ActionParameterValueNotInList: { message: "The value '%1' for the parameter '%2' in the action '%3' is not in the list of acceptable values.", severity: 'Warning', resolution: 'Choose a value from the enumeration list that the implementation can support and resubmit the request if the operation failed.' },
  ActionParameterValueTypeError: { message: "The value '%1' for the parameter '%2' in the action '%3' is not a type that the parameter can accept.", severity: 'Warning', resolution: 'Correct the value for the parameter in the request body and resubmit the request if the operation failed.' },
  ActionParameterValueFormatError: { message: "The value '%1' for the parameter '%2' in the action '%3' is not a format that the parameter can accept.", severity: 'Warning', resolution: 'Correct the value for the parameter in the request body and resubmit the request if the operation failed.' },
  ActionParameterUnknown: { message: "The action '%1' was submitted with the invalid parameter '%2'.", severity: 'Warning', resolution: 'Correct the invalid action parameter and resubmit the request if the operation failed.' },
  PreconditionFailed: { message: 'The ETag supplied did not match the ETag required to change this resource.', severity: 'Critical', resolution: 'Try the operation again using the appropriate ETag.' },
  CreateLimitReachedForResource: { message: 'The create operation failed because the resource has reached the limit of possible resources.', severity: 'Critical', resolution: 'Either delete resources and resubmit the request if the operation failed or do not resubmit the request.' },
  ResourceAlreadyExists: { message: "The requested resource of type %1 with the property %2 with the value '%3' already exists.", severity: 'Critical', resolution: 'Do not repeat the create operation as the resource was already created.' },
  CreateFailedMissingReqProperties: { message: "The create operation failed because the required property '%1' was missing from the request.", severity: 'Critical', resolution: 'Correct the body to include the required property with a valid value and resubmit the request if the operation failed.' },
  QueryNotSupported: { message: 'Querying is not supported by the implementation.', severity: 'Warning', resolution: 'Remove the query parameters and resubmit the request if the operation failed.' },
  ResourceInUse: { message: 'The change to the requested resource failed because the resource is in use or in transition.', severity: 'Warning', resolution: 'Remove the condition and resubmit the request if the operation failed.' },
  ServiceTemporarilyUnavailable: { message: 'The service is temporarily unavailable.  Retry in %1 seconds.', severity: 'Critical', resolution: 'Wait for the indicated retry duration and retry the operation.' },
  InternalError: { message: 'The request failed due to an internal service error.  The service is still operational.', severity: 'Critical', resolution: 'Resubmit the request.  If the problem persists, consider resetting the service.' },
  ResourceInStandby: { message: 'The request could not be performed because the resource is in standby.', severity: 'Critical', resolution: 'Ensure that the resource is in the correct power state and resubmit the request.' },
  PreconditionRequired: { message: 'A precondition header or annotation is required to change this resource.', severity: 'Critical', resolution: 'Try the operation again using an If-Match or If-None-Match header and appropriate ETag.' },
  NoOperation: { message: 'The request body submitted contain no data to act upon and no changes to the resource took place.', severity: 'Warning', resolution: 'Add properties in the JSON object and resubmit the request.' },
} as const satisfies Record<string, MessageDef>;

export type BaseMessageId = keyof typeof BASE_MESSAGES;

export interface RedfishMessage {
  '@odata.type': string;
  MessageId: string;
  Message: string;
  MessageArgs: string[];
  Severity: Severity;
  MessageSeverity: Severity;
  Resolution: string;
  RelatedProperties?: string[];
}

export interface RedfishErrorBody {
  error: {
    code: string;
    message: string;
    '@Message.ExtendedInfo': RedfishMessage[];
  };
}

export function message(id: BaseMessageId, args: readonly string[] = [], related?: readonly string[]): RedfishMessage {
  const def: MessageDef = BASE_MESSAGES[id];
  const text = def.message.replace(/%(\d)/g, (_m, n: string) => args[Number(n) - 1] ?? '');
  const m: RedfishMessage = {
    '@odata.type': T.Message,
    MessageId: `${BASE_REGISTRY}.${id}`,
    Message: text,
    MessageArgs: [...args],
    Severity: def.severity,
    MessageSeverity: def.severity,
    Resolution: def.resolution,
  };
  if (related) m.RelatedProperties = [...related];
  return m;
}

/** A Redfish error body: code = the first message's id, message = a human summary. */
export function errorBody(summary: string, messages: readonly RedfishMessage[]): RedfishErrorBody {
  return {
    error: {
      code: messages[0]?.MessageId ?? `${BASE_REGISTRY}.GeneralError`,
      message: summary,
      '@Message.ExtendedInfo': [...messages],
    },
  };
}

/** SSDP search target of a Redfish service (DSP0266 "Discovery"). */
export const SSDP_ST = 'urn:dmtf-org:service:redfish-rest:1';
export const SSDP_ADDRESS = '239.255.255.250';
export const SSDP_PORT = 1900;
